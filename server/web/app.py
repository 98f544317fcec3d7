"""The FastAPI application: creators' REST API, the play websocket, media and the web player."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from reelfork.generation.production.pipeline import ProductionError, read_json
from reelfork.narrative.export import WrittenNode, to_dot, to_mermaid
from reelfork.narrative.formats import StoryError, StoryFormat, load_story
from reelfork.narrative.ids import Identifier
from reelfork.narrative.schema import story_schema
from reelfork.narrative.story import Story
from reelfork.server.metrics import render as render_metrics
from reelfork.server.productions import (
    ProductionRecords,
    ProductionRequest,
    checked_spec,
    production_folder,
    production_id,
)
from reelfork.server.queue.payloads import ProduceJob
from reelfork.server.runtime import Runtime
from reelfork.server.settings import Settings
from reelfork.server.web.play import Connection

CLIENT_DEMO = Path(str(resources.files("reelfork.client_demo")))
"""The web player and creator view: package data of ``reelfork.client_demo`` (the ``client-demo/`` folder)."""
bearer = HTTPBearer(auto_error=False)
CONTENT_TYPES: dict[str, StoryFormat] = {
    "text/x-twee": "twee",
    "application/x-twee": "twee",
    "text/x-yarn": "yarn",
    "application/x-yarn": "yarn",
}


def graph_json(
    story: Story, version: int, counts: dict[tuple[str, str], int], written: list[WrittenNode]
) -> dict[str, Any]:
    nodes = [
        {"id": s.id, "title": s.title, "kind": "ending" if s.ending else ("start" if s.id == story.start else "scene")}
        for s in story.scenes
    ]
    edges = []
    for scene in story.scenes:
        for choice in scene.choices:
            target = choice.target or f"open:{scene.id}/{choice.id}"
            if choice.open is not None:
                nodes.append({"id": target, "title": choice.open.hint, "kind": "open"})
            edges.append(
                {
                    "source": scene.id,
                    "target": target,
                    "choice": choice.id,
                    "label": choice.label,
                    "viewers": counts.get((scene.id, choice.id), 0),
                }
            )
    known = {node["id"] for node in nodes}
    for entry in written:
        source = f"open:{entry.parent}/{entry.choice}"
        if source not in known:  # a choice of a written scene: its open node hangs off that scene
            nodes.append({"id": source, "title": "written by the LLM", "kind": "open"})
            edges.append(
                {
                    "source": entry.parent,
                    "target": source,
                    "choice": entry.choice,
                    "label": entry.choice,
                    "viewers": counts.get((entry.parent, entry.choice), 0),
                }
            )
            known.add(source)
        nodes.append({"id": entry.scene, "title": entry.title, "kind": "written"})
        edges.append(
            {
                "source": f"open:{entry.parent}/{entry.choice}",
                "target": entry.scene,
                "choice": entry.choice,
                "label": "written",
                "viewers": counts.get((entry.parent, entry.choice), 0),
            }
        )
    return {"id": story.id, "version": version, "start": story.start, "nodes": nodes, "edges": edges}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="reelfork", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime

    def creator(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if credentials is None or not hmac.compare_digest(credentials.credentials, runtime.creator_token):
            raise HTTPException(
                401,
                "creator routes need 'Authorization: Bearer <creator token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        await runtime.redis.ping()
        return {"status": "ok", "queue": await runtime.queue.depth()}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = render_metrics(await runtime.queue.depth())
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/stories")
    async def list_stories() -> dict[str, Any]:
        stories = []
        for story_id in await runtime.store.story_ids():
            loaded = await runtime.store.story(story_id)
            if loaded is not None:
                stories.append(
                    {
                        "id": story_id,
                        "title": loaded.story.title,
                        "logline": loaded.story.bible.logline,
                        "version": loaded.version,
                    }
                )
        return {"stories": stories}

    @app.get("/v1/stories/{story_id}")
    async def get_story(story_id: str, version: int | None = None) -> dict[str, Any]:
        loaded = await runtime.store.story(story_id, version)
        if loaded is None:
            raise HTTPException(404, f"no story {story_id!r}" + (f" version {version}" if version else ""))
        return {"id": story_id, "version": loaded.version, "story": loaded.story.model_dump(mode="json")}

    @app.get("/v1/stories/{story_id}/versions")
    async def list_versions(story_id: str) -> dict[str, Any]:
        versions = await runtime.store.versions(story_id)
        if not versions:
            raise HTTPException(404, f"no story {story_id!r}")
        return {"id": story_id, "versions": versions}

    @app.get("/v1/stories/{story_id}/graph")
    async def story_graph(story_id: str, version: int | None = None, format: str = "json") -> Response:
        """The graph with viewer counts per choice and the scenes the writer added, for creators."""
        loaded = await runtime.store.story(story_id, version)
        if loaded is None:
            raise HTTPException(404, f"no story {story_id!r}")
        counts = await runtime.store.choice_counts(loaded)
        written = [
            WrittenNode(parent=p, choice=c, scene=s, title=t)
            for p, c, s, t in await runtime.store.written_index(loaded)
        ]
        if format == "dot":
            return PlainTextResponse(
                to_dot(loaded.story, counts=counts, written=written), media_type="text/vnd.graphviz"
            )
        if format == "mermaid":
            return PlainTextResponse(to_mermaid(loaded.story, counts=counts, written=written))
        if format != "json":
            raise HTTPException(400, "format is one of json, dot, mermaid")
        return JSONResponse(graph_json(loaded.story, loaded.version, counts, written))

    @app.get("/v1/schema/story")
    async def schema() -> dict[str, Any]:
        """The JSON Schema of the story format, for editors' autocompletion."""
        return story_schema()

    @app.post("/v1/stories", status_code=201, dependencies=[Depends(creator)])
    async def publish_story(request: Request, format: StoryFormat | None = None) -> JSONResponse:
        """Publish a story: the project's YAML/JSON, Twee 3 or Yarn (by ``format`` or content type)."""
        body = await request.body()
        kind = format or CONTENT_TYPES.get(request.headers.get("content-type", "").split(";")[0].strip(), "story")
        try:
            story, warnings = load_story(body, source="body", kind=kind)
        except StoryError as exc:
            return JSONResponse(
                status_code=422,
                content={
                    "detail": [{"severity": p.severity, "where": p.where, "message": p.message} for p in exc.problems]
                },
            )
        version, created = await runtime.store.publish(story)
        loaded = await runtime.store.story(story.id, version)
        if created and loaded is not None and settings.warm_authored:
            await runtime.director.warm(loaded)
        return JSONResponse(
            status_code=201 if created else 200,
            content={
                "id": story.id,
                "version": version,
                "created": created,
                "warnings": [{"where": w.where, "message": w.message} for w in warnings],
            },
        )

    @app.post("/v1/productions", status_code=202, dependencies=[Depends(creator)])
    async def start_production(body: ProductionRequest) -> JSONResponse:
        """Queue a linear production on the workers; the same request again returns the same production."""
        story: Story | None = None
        try:
            if body.story_id is not None:
                loaded = await runtime.store.story(body.story_id, body.version)
                if loaded is None:
                    version = f" version {body.version}" if body.version else ""
                    raise HTTPException(404, f"no story {body.story_id!r}{version}")
                story = loaded.story
            elif body.story is not None:
                story = Story.model_validate(body.story)
            spec = checked_spec(body, story)
        except ProductionError as exc:
            problems = [{"message": line} for line in str(exc).splitlines()]
            return JSONResponse(status_code=422, content={"detail": problems})
        except ValidationError as exc:
            return JSONResponse(status_code=422, content={"detail": [
                {"where": "story." + ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
            ]})
        production = production_id(spec)
        records = ProductionRecords(runtime.redis)
        created = await records.create(production, spec)
        record = await records.get(production)
        if created or (record is not None and record["status"] == "failed"):
            await records.update(production, status="queued", error="")
            job = ProduceJob(production=production)
            await runtime.queue.enqueue("produce", f"produce:{production}", job, time.time())
        return JSONResponse(
            status_code=202,
            content={"id": production, "created": created, "status": f"/v1/productions/{production}"},
        )

    @app.get("/v1/productions/{production}", dependencies=[Depends(creator)])
    async def production_status(production: Identifier) -> dict[str, Any]:
        """Status, per-stage progress, and (when done) the manifest with links to every output."""
        record = await ProductionRecords(runtime.redis).get(production)
        if record is None:
            raise HTTPException(404, f"no production {production!r}")
        folder = production_folder(settings, production)
        result: dict[str, Any] = {"id": production, "status": record["status"], "error": record.get("error") or None}
        progress = read_json(folder / "progress.json")
        result["progress"] = progress["stages"] if isinstance(progress, dict) else {}
        runs = read_json(folder / "runs.json")
        result["runs"] = [run.get("counters", {}) for run in runs] if isinstance(runs, list) else []
        if record["status"] == "done":
            result["manifest"] = read_json(folder / "manifest.json")
            result["files"] = f"/v1/productions/{production}/files/"
        return result

    @app.get("/v1/productions/{production}/files/{path:path}", dependencies=[Depends(creator)])
    async def production_file(production: Identifier, path: str) -> FileResponse:
        """Download one output (``manifest.json``, an episode MP4, a WebVTT, an HLS playlist or segment)."""
        folder = production_folder(settings, production).resolve()
        target = (folder / path).resolve()
        if not target.is_relative_to(folder) or not target.is_file() or target.name.startswith("."):
            raise HTTPException(404, f"no file {path!r} in production {production!r}")
        return FileResponse(target)

    @app.websocket("/v1/play")
    async def play(websocket: WebSocket) -> None:
        await Connection(websocket, runtime).serve()

    settings.media_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/media", StaticFiles(directory=settings.media_dir), name="media")
    app.mount("/", StaticFiles(directory=CLIENT_DEMO, html=True), name="player")
    return app
