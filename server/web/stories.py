"""Stories: list, read, graph and publish (the project's YAML/JSON, Twee 3 or Yarn)."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, JsonValue, RootModel
from reelfork.narrative.export import WrittenNode, to_dot, to_mermaid
from reelfork.narrative.formats import StoryFormat
from reelfork.narrative.schema import story_schema
from reelfork.narrative.story import Story, episodes_of, is_free, story_from_json
from reelfork.server.pool import WorkerDied
from reelfork.server.publishing import Findings, prepare
from reelfork.server.store import StoryVersion, is_packed, unpacked
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


class LookSummary(BaseModel):
    id: str
    label: str
    """What a picker shows."""
    color: str | None
    """The character's colour in this look, when it has its own."""


class PersonaSummary(BaseModel):
    """The character the viewer plays: the name they may change and the looks they may pick (the first is the
    default)."""

    character: str
    name: str
    """The default name."""
    max_name: int
    """The longest name a viewer may give, in characters."""
    looks: list[LookSummary]


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
    language: str
    """The story's own language: the default locale."""
    locales: list[str]
    """The locales a viewer may play it in (``start``'s ``locale``)."""
    persona: PersonaSummary | None
    """Who the viewer plays (``start``'s ``persona``); null: the story offers no persona."""


def story_summary(story: Story, version: int, paywall: bool) -> StorySummary:
    episodes = []
    for episode in episodes_of(story):
        free = not paywall or is_free(story, episode.number)
        price = Price(coins=episode.price.coins) if episode.price is not None and not free else None
        episodes.append(EpisodeSummary(number=episode.number, title=episode.title, free=free, price=price))
    free_count = next((e.number - 1 for e in episodes if not e.free), len(episodes))
    persona = None
    if story.persona is not None:
        looks = [LookSummary(id=look.id, label=look.label, color=look.color) for look in story.persona.looks]
        persona = PersonaSummary(character=story.persona.character, name=story.persona.name,
                                 max_name=story.persona.max_name, looks=looks)
    return StorySummary(id=story.id, title=story.title, logline=story.bible.logline, version=version,
                        episodes=episodes, free_episodes=free_count, language=story.language,
                        locales=story.offered_locales(), persona=persona)


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
        found = await runtime.store.document(story_id)
        if found is None:
            continue
        version, stored = found
        if is_packed(stored):  # large: summarised from its JSON in the publishing process, once per version
            key = (story_id, version, paywall, hash(stored))
            summary = SUMMARIES.get(key)
            if summary is None:
                summary = await runtime.publisher.run(summary_of_document, story_id, version, stored, paywall)
                remember(SUMMARIES, key, summary)
            stories.append(summary)
            continue
        loaded = await runtime.store.story(story_id, version)
        if loaded is not None:
            stories.append(story_summary(loaded.story, loaded.version, paywall))
    return StoryListing(stories=stories)


@router.get("/stories/{story_id}", responses=NOT_FOUND, response_model=StoryDocument)
async def get_story(runtime: RuntimeDep, story_id: str, version: int | None = None) -> Response:
    """A story version as published: its stored JSON, neither parsed nor serialised again (a large story's
    would hold the event loop for seconds)."""
    found = await runtime.store.document(story_id, version)
    if found is None:
        raise HTTPException(404, f"no story {story_id!r}" + (f" version {version}" if version else ""))
    number, stored = found
    if is_packed(stored):
        body = await asyncio.to_thread(story_document, story_id, number, stored)  # zlib lets go of the GIL
    else:
        body = story_document(story_id, number, stored)
    return Response(body, media_type="application/json")


def story_document(story_id: str, version: int, stored: str) -> bytes:
    """The :class:`StoryDocument` of a stored story JSON, put together as bytes."""
    head = json.dumps({"id": story_id, "version": version}, separators=(",", ":"))[:-1]
    return f'{head},"story":{unpacked(stored)}}}'.encode()


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
    found = await runtime.store.document(story_id, version)
    if found is None:
        raise HTTPException(404, f"no story {story_id!r}")
    number, stored = found
    counts = await runtime.store.choice_counts_of(story_id, number) if is_creator else None
    written = [
        WrittenNode(parent=p, choice=c, scene=s, title=t)
        for p, c, s, t in await runtime.store.written_index_of(story_id, number)
    ]
    if is_packed(stored):  # large: drawn in the publishing process, the event loop stays free
        body = await runtime.publisher.run(graph_of_document, story_id, number, stored, counts, written, format)
    else:
        loaded = await runtime.store.story(story_id, number)
        if loaded is None:
            raise HTTPException(404, f"no story {story_id!r}")
        body = graph_body(loaded.story, number, counts, written, format)
    return Response(body, media_type=GRAPH_MEDIA_TYPES[format])


GRAPH_MEDIA_TYPES = {"json": "application/json", "dot": "text/vnd.graphviz", "mermaid": "text/plain; charset=utf-8"}


def graph_body(
    story: Story,
    version: int,
    counts: dict[tuple[str, str], int] | None,
    written: list[WrittenNode],
    format: Literal["json", "dot", "mermaid"],
) -> bytes:
    if format == "dot":
        return to_dot(story, counts=counts, written=written).encode()
    if format == "mermaid":
        return to_mermaid(story, counts=counts, written=written).encode()
    return story_graph_of(story, version, counts, written).model_dump_json().encode()


# -- large stories, in the publishing process ------------------------------------------------------------------

PARSED: dict[tuple[str, int], Story] = {}
"""The large story the publishing process parsed last (a 100,000-scene story takes seconds to parse)."""
SUMMARIES: dict[tuple[str, int, bool, int], StorySummary] = {}
"""Catalogue entries of large stories, in the server's process: versions are immutable."""
REMEMBERED = 64


def remember(cache: dict[tuple[str, int, bool, int], StorySummary], key: tuple[str, int, bool, int],
             value: StorySummary) -> None:
    if len(cache) >= REMEMBERED:
        cache.pop(next(iter(cache)))
    cache[key] = value


def parsed(story_id: str, version: int, stored: str) -> Story:
    story = PARSED.get((story_id, version))
    if story is None:
        PARSED.clear()  # one at a time: a large story takes hundreds of MB as models
        story = PARSED[(story_id, version)] = story_from_json(unpacked(stored))
    return story


def graph_of_document(
    story_id: str,
    version: int,
    stored: str,
    counts: dict[tuple[str, str], int] | None,
    written: list[WrittenNode],
    format: Literal["json", "dot", "mermaid"],
) -> bytes:
    """:func:`graph_body` of a stored story; runs in the publishing process."""
    return graph_body(parsed(story_id, version, stored), version, counts, written, format)


def summary_of_document(story_id: str, version: int, stored: str, paywall: bool) -> StorySummary:
    """:func:`story_summary` of a stored story; runs in the publishing process."""
    return story_summary(parsed(story_id, version, stored), version, paywall)


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
