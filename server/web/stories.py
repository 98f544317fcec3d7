"""Stories: list, read, graph and publish (the project's YAML/JSON, Twee 3 or Yarn)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, JsonValue, RootModel
from reelfork.narrative.export import WrittenNode, to_dot, to_mermaid
from reelfork.narrative.formats import StoryFormat
from reelfork.narrative.schema import story_schema
from reelfork.narrative.story import Story, episodes_of, is_free
from reelfork.server.pool import WorkerDied
from reelfork.server.publishing import Findings, prepare
from reelfork.server.store import StoryVersion
from reelfork.server.web.dependencies import CreatorDep, RuntimeDep, creator
from reelfork.server.web.problems import CREATOR_ERRORS, ERRORS, NOT_FOUND, TOO_LARGE, Located, Message, Refused

router = APIRouter(prefix="/v1", tags=["stories"], responses=ERRORS)

CONTENT_TYPES: dict[str, StoryFormat] = {
    "text/x-twee": "twee",
    "application/x-twee": "twee",
    "text/x-yarn": "yarn",
    "application/x-yarn": "yarn",
}


class Price(BaseModel):
    coins: int


class EpisodeSummary(BaseModel):
    number: int
    title: str
    free: bool
    """Plays without an entitlement (every episode does while the server has no entitlement key)."""
    price: Price | None
    """What unlocking it costs; null for a free episode."""


class StorySummary(BaseModel):
    id: str
    title: str
    logline: str
    version: int
    """The latest version."""
    episodes: list[EpisodeSummary]
    """In order; a story that declares none is one episode."""
    free_episodes: int
    """How many episodes, from the first, are free."""


def story_summary(story: Story, version: int, paywall: bool) -> StorySummary:
    episodes = []
    for episode in episodes_of(story):
        free = not paywall or is_free(story, episode.number)
        price = Price(coins=episode.price.coins) if episode.price is not None and not free else None
        episodes.append(EpisodeSummary(number=episode.number, title=episode.title, free=free, price=price))
    free_count = next((e.number - 1 for e in episodes if not e.free), len(episodes))
    return StorySummary(id=story.id, title=story.title, logline=story.bible.logline, version=version,
                        episodes=episodes, free_episodes=free_count)


class StoryListing(BaseModel):
    stories: list[StorySummary]


class StoryDocument(BaseModel):
    id: str
    version: int
    story: Story


class StoryVersions(BaseModel):
    id: str
    versions: list[int]


class GraphNode(BaseModel):
    id: str
    """A scene's id, or ``open:<scene>/<choice>`` for a choice the writer fills in."""
    title: str
    kind: Literal["start", "scene", "ending", "open", "written"]


class GraphEdge(BaseModel):
    source: str
    target: str
    choice: str
    label: str
    viewers: int | None
    """Viewers who took this choice: for the creator (with the creator token) only, else null."""


class StoryGraph(BaseModel):
    id: str
    version: int
    start: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class JsonSchema(RootModel[dict[str, JsonValue]]):
    """A JSON Schema (draft 2020-12) document."""


class PublishWarning(BaseModel):
    where: str
    message: str


class Published(BaseModel):
    id: str
    version: int
    created: bool
    """False when this exact story was already the latest version (and the status is 200)."""
    warnings: list[PublishWarning]
    """The first 100 warnings; ``warning_counts`` counts them all."""
    warnings_total: int = 0
    warning_counts: dict[str, int] = {}
    """Message -> how many warnings have it."""


def story_graph_of(
    story: Story, version: int, counts: dict[tuple[str, str], int] | None, written: list[WrittenNode]
) -> StoryGraph:
    """The graph; ``counts`` (choices taken) only for the creator: without them edges carry no viewers."""
    def kind(scene_id: str, ending: bool) -> Literal["start", "scene", "ending"]:
        return "ending" if ending else ("start" if scene_id == story.start else "scene")

    nodes = [GraphNode(id=s.id, title=s.title, kind=kind(s.id, s.ending)) for s in story.scenes]
    edges = []
    for scene in story.scenes:
        for choice in scene.choices:
            target = choice.target or f"open:{scene.id}/{choice.id}"
            if choice.open is not None:
                nodes.append(GraphNode(id=target, title=choice.open.hint, kind="open"))
            viewers = counts.get((scene.id, choice.id), 0) if counts is not None else None
            edge = GraphEdge(source=scene.id, target=target, choice=choice.id, label=choice.label, viewers=viewers)
            edges.append(edge)
    known = {node.id for node in nodes}
    for entry in written:
        source = f"open:{entry.parent}/{entry.choice}"
        viewers = counts.get((entry.parent, entry.choice), 0) if counts is not None else None
        if source not in known:  # a choice of a written scene: its open node hangs off that scene
            nodes.append(GraphNode(id=source, title="written by the LLM", kind="open"))
            edges.append(
                GraphEdge(source=entry.parent, target=source, choice=entry.choice, label=entry.choice, viewers=viewers)
            )
            known.add(source)
        nodes.append(GraphNode(id=entry.scene, title=entry.title, kind="written"))
        edge = GraphEdge(source=source, target=entry.scene, choice=entry.choice, label="written", viewers=viewers)
        edges.append(edge)
    return StoryGraph(id=story.id, version=version, start=story.start, nodes=nodes, edges=edges)


@router.get("/stories")
async def list_stories(runtime: RuntimeDep) -> StoryListing:
    """The published stories with their episodes, free count and prices: what a client draws its catalogue from."""
    settings = runtime.settings
    paywall = settings.entitlement_secret is not None or settings.entitlement_public_key is not None
    stories = []
    for story_id in await runtime.store.story_ids():
        loaded = await runtime.store.story(story_id)
        if loaded is not None:
            stories.append(story_summary(loaded.story, loaded.version, paywall))
    return StoryListing(stories=stories)


@router.get("/stories/{story_id}", responses=NOT_FOUND)
async def get_story(runtime: RuntimeDep, story_id: str, version: int | None = None) -> StoryDocument:
    loaded = await runtime.store.story(story_id, version)
    if loaded is None:
        raise HTTPException(404, f"no story {story_id!r}" + (f" version {version}" if version else ""))
    return StoryDocument(id=story_id, version=loaded.version, story=loaded.story)


@router.get("/stories/{story_id}/versions", responses=NOT_FOUND)
async def list_versions(runtime: RuntimeDep, story_id: str) -> StoryVersions:
    versions = await runtime.store.versions(story_id)
    if not versions:
        raise HTTPException(404, f"no story {story_id!r}")
    return StoryVersions(id=story_id, versions=versions)


GRAPH_TEXT = {
    "text/vnd.graphviz": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}},
}


@router.get(
    "/stories/{story_id}/graph",
    response_model=StoryGraph,
    responses={
        **NOT_FOUND,
        **CREATOR_ERRORS,
        200: {
            "description": "The graph: JSON, Graphviz DOT (``format=dot``) or Mermaid (``format=mermaid``).",
            "content": GRAPH_TEXT,
        },
    },
)
async def story_graph(
    runtime: RuntimeDep,
    is_creator: CreatorDep,
    story_id: str,
    version: int | None = None,
    format: Literal["json", "dot", "mermaid"] = "json",
) -> Response:
    """The graph with the scenes the writer added; with the creator token, viewer counts per choice too."""
    loaded = await runtime.store.story(story_id, version)
    if loaded is None:
        raise HTTPException(404, f"no story {story_id!r}")
    counts = await runtime.store.choice_counts(loaded) if is_creator else None
    written = [
        WrittenNode(parent=p, choice=c, scene=s, title=t) for p, c, s, t in await runtime.store.written_index(loaded)
    ]
    if format == "dot":
        dot = to_dot(loaded.story, counts=counts, written=written)
        return PlainTextResponse(dot, media_type="text/vnd.graphviz")
    if format == "mermaid":
        return PlainTextResponse(to_mermaid(loaded.story, counts=counts, written=written))
    graph = story_graph_of(loaded.story, loaded.version, counts, written)
    return JSONResponse(graph.model_dump(mode="json"))


@router.get("/schema/story")
async def schema() -> JsonSchema:
    """The JSON Schema of the story format, for editors' autocompletion."""
    return JsonSchema(story_schema())


STORY_BODY = {
    "requestBody": {
        "required": True,
        "description": "A story: the project's YAML or JSON, Twee 3 or Yarn (by ``format`` or the content type).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
            **{content_type: {"schema": {"type": "string"}} for content_type in CONTENT_TYPES},
        },
    }
}


@router.post(
    "/stories",
    status_code=201,
    dependencies=[Depends(creator)],
    responses={
        **CREATOR_ERRORS,
        **TOO_LARGE,
        200: {"model": Published, "description": "This story was already the latest."},
        503: {"model": Message, "description": "The process checking the story died (nothing was published)."},
    },
    openapi_extra=STORY_BODY,
)
async def publish_story(
    runtime: RuntimeDep, request: Request, response: Response, format: StoryFormat | None = None
) -> Published:
    """Publish a story: the project's YAML/JSON, Twee 3 or Yarn (by ``format`` or content type)."""
    body = await request.body()
    kind = format or CONTENT_TYPES.get(request.headers.get("content-type", "").split(";")[0].strip(), "story")
    try:
        prepared = await runtime.publisher.run(prepare, body, kind, runtime.settings.warm_budget)
    except WorkerDied:  # killed (out of memory): the pool is already fresh, nothing was stored
        raise HTTPException(503, "the process checking this story died; nothing was published, try again") from None
    if prepared.errors is not None or prepared.excerpt is None:
        raise Refused(bounded(prepared.errors or prepared.warnings))
    version, created = await runtime.store.publish_document(prepared.story_id, prepared.document, prepared.digest)
    if created and runtime.settings.warm_authored:
        excerpt = StoryVersion(story=prepared.excerpt, version=version, digest=prepared.digest)
        await runtime.director.warm(excerpt, runtime.settings.warm_budget)
    response.status_code = 201 if created else 200
    return Published(
        id=prepared.story_id,
        version=version,
        created=created,
        warnings=[PublishWarning(where=w.where, message=w.message) for w in prepared.warnings.listed],
        warnings_total=prepared.warnings.total,
        warning_counts=prepared.warnings.counts,
    )


def bounded(findings: Findings) -> list[Located]:
    """The listed findings, and one more that counts the rest by message when some were left out."""
    located = [Located(severity=f.severity, where=f.where, message=f.message) for f in findings.listed]
    left_out = findings.total - len(findings.listed)
    if left_out > 0:
        counts = "; ".join(f"{count} x {message}" for message, count in findings.counts.items())
        located.append(Located(severity="error", where="body", message=f"{left_out} more not listed; all: {counts}"))
    return located
