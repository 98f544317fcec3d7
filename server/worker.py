"""Workers: take jobs from the queue, run the writer or the renderer in a process pool, store results.

The heavy work runs in separate processes so a server's event loop stays responsive; the results are
content-addressed, so a job that runs twice (after a crash) writes the same thing twice, harmlessly.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from generation.rendering import RenderRequest
from generation.writing import WriteError, WriteRequest
from narrative.graph import bridge_to_ending
from narrative.state import find_choice, is_generated
from server.director import Director
from server.jobs import Job, JobQueue, Kind
from server.settings import Settings
from server.store import Store, StoredClip, WrittenScene

log = logging.getLogger(__name__)
RECLAIM_IDLE_MS = 120_000


class Worker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: JobQueue,
        director: Director,
        executor: Executor,
        kinds: tuple[Kind, ...],
    ) -> None:
        self.settings = settings
        self.kinds = kinds
        self.store = store
        self.queue = queue
        self.director = director
        self.executor = executor
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"

    async def run(self) -> None:
        for job in await self.queue.reclaim(self.consumer, RECLAIM_IDLE_MS, self.kinds):
            await self._handle(job)
        while True:
            queued = await self.queue.next(self.consumer, self.kinds)
            if queued is not None:
                await self._handle(queued)

    async def _handle(self, job: Job) -> None:
        try:
            if job.kind == "write":
                await self._write(job)
            else:
                await self._render(job)
            await self.queue.done(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            if job.attempt < self.settings.job_attempts:
                log.warning("job %s (%s) failed, attempt %d; retrying", job.key, job.kind, job.attempt, exc_info=True)
                await self.queue.retry(job)
            else:
                log.error("job %s (%s) failed %d times; giving up", job.key, job.kind, job.attempt, exc_info=True)
                await self.queue.done(job)
                await self.director.events.publish(f"failed:{job.key}")

    async def _write(self, job: Job) -> None:
        payload = job.payload
        target: str = payload["scene"]
        if await self.store.written(target) is not None:
            return
        story = await self.store.story(payload["story"], payload["version"])
        if story is None:
            raise LookupError(f"story {payload['story']!r} v{payload['version']} is gone")
        path = [await self.director.scene(story, scene_id) for scene_id in payload["path"]]
        scenes = [scene for scene in path if scene is not None]
        if len(scenes) != len(path):
            raise LookupError(f"a scene on the path to {target} is missing")
        choice = find_choice(scenes[-1], payload["choice"])
        request = WriteRequest(
            story=story.story,
            path=scenes,
            choice=choice,
            scene_id=target,
            must_end=payload["must_end"],
            seed=int(target[2:10], 16),
        )
        loop = asyncio.get_running_loop()
        written: WrittenScene
        try:
            scene_json, provenance = await loop.run_in_executor(
                self.executor, write_scene, request.model_dump_json(), _writer_options(self.settings)
            )
            written = WrittenScene.model_validate({"scene": scene_json, "provenance": provenance})
        except WriteError as exc:
            log.warning("writer gave up on %s: %s; using the fallback", target, exc)
            assert choice.open is not None
            if choice.open.fallback is not None:
                written = WrittenScene(redirect=choice.open.fallback, provenance={"fallback": str(exc)[:500]})
            else:
                anchor = next(s for s in reversed(payload["path"]) if not is_generated(s))
                bridge = bridge_to_ending(story.story, target, anchor)
                written = WrittenScene(scene=bridge, provenance={"fallback": str(exc)[:500]})
        await self.store.save_written(target, written)
        await self.director.events.publish(f"written:{target}")
        scene = await self.director.scene(story, target)
        if scene is not None:
            await self.director.ensure_clip(story, scene, "high")

    async def _render(self, job: Job) -> None:
        payload = job.payload
        key: str = payload["clip"]
        if await self.store.clip(key) is not None:
            return
        story = await self.store.story(payload["story"], payload["version"])
        if story is None:
            raise LookupError(f"story {payload['story']!r} v{payload['version']} is gone")
        scene = await self.director.scene(story, payload["scene"])
        if scene is None:
            raise LookupError(f"scene {payload['scene']!r} is not written")
        relative = Path("clips") / f"{key}.mp4"
        request = RenderRequest(
            scene=scene,
            bible=story.story.bible,
            language=story.story.language,
            profile=self.settings.profile,
            output=self.settings.media_dir / relative,
        )
        loop = asyncio.get_running_loop()
        duration, last_frame = await loop.run_in_executor(
            self.executor, render_clip, request.model_dump_json(), self.settings.render_threads
        )
        clip = StoredClip(key=key, file=str(relative), duration=duration, last_frame=last_frame)
        await self.store.save_clip(clip)
        await self.director.events.publish(f"clip:{key}", file=clip.file, duration=duration)


def process_pool(processes: int) -> ProcessPoolExecutor:
    """Processes for the heavy work. ``spawn``: never fork a process that runs an event loop and threads."""
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))


def _writer_options(settings: Settings) -> dict[str, Any]:
    return {
        "model_path": str(settings.writer_model_path) if settings.writer_model_path else None,
        "n_threads": settings.writer_threads,
        "max_attempts": settings.writer_attempts,
    }


# -- what runs inside the pool's processes -------------------------------------------------------

_writer: Any = None
_renderer: Any = None


def write_scene(request_json: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    global _writer
    from generation.llama import LlamaCppWriter

    if _writer is None:
        model_path = Path(options["model_path"]) if options["model_path"] else None
        _writer = LlamaCppWriter(
            model_path=model_path, n_threads=options["n_threads"], max_attempts=options["max_attempts"]
        )
    request = WriteRequest.model_validate_json(request_json)
    scene = _writer.write(request)
    report = getattr(_writer, "last_report", None)
    provenance = report.provenance() if report is not None and hasattr(report, "provenance") else {}
    return scene.model_dump(mode="json"), provenance


def render_clip(request_json: str, threads: int) -> tuple[float, str]:
    global _renderer
    from generation.animatic import AnimaticRenderer

    if _renderer is None:
        _set_threads(threads)
        _renderer = AnimaticRenderer(threads=threads)
    request = RenderRequest.model_validate_json(request_json)
    request.output.parent.mkdir(parents=True, exist_ok=True)
    clip = _renderer.render(request)
    return clip.duration, str(clip.last_frame)


def _set_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
