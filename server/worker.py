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
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from generation.checks import WordListPolicy, policy_rejections, read_word_list
from generation.production import ProductionError
from generation.rendering import PROFILES, RenderRequest
from generation.report import WriteFailed
from generation.writing import WriteError, WriteRequest
from narrative.graph import bridge_to_ending
from narrative.state import find_choice, is_generated
from narrative.story import Choice
from server.director import Director
from server.jobs import Job, JobQueue, Kind
from server.metrics import CONTENT_REJECTIONS, DEADLINES_MISSED, JOB_SECONDS
from server.productions import ProductionRecords, ProductionSpec, options, produce, production_folder
from server.settings import Settings
from server.store import Store, StoredClip, StoryVersion, WrittenScene

if TYPE_CHECKING:
    from generation.provenance import ClipSigner

log = logging.getLogger(__name__)


ANNOUNCE_S = 60.0
"""How often a worker says it is alive (a ``worker:`` notice with its kinds), idle or at work: the
servers' lookahead counts its render slots from these."""


class Worker:
    """One loop taking jobs of some kinds; the heavy part of each runs in ``executor``."""

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
        self.name = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._announced = -ANNOUNCE_S

    async def run(self) -> None:
        last_reap = 0.0
        while True:
            try:
                await self.announce()
                if time.monotonic() - last_reap > self.queue.lease_s / 3:
                    await self.queue.reap()
                    last_reap = time.monotonic()
                for kind in self.kinds:
                    job = await self.queue.claim(kind, wait_s=1.0 / len(self.kinds), worker=self.name)
                    if job is not None:
                        await self.handle(job)
            except RedisError:
                # Redis restarting or unreachable: whatever we held is leased and comes back to the queue.
                log.warning("worker %s lost Redis; retrying in 1 s", self.name, exc_info=True)
                await asyncio.sleep(1.0)

    async def handle(self, job: Job) -> None:
        started = time.perf_counter()
        heartbeat = asyncio.create_task(self._keep_lease(job))
        try:
            runs = {"write": self._write, "render": self._render, "diffuse": self._render, "produce": self._produce}
            run = runs[job.kind]
            done = await run(job)
            await self.queue.done(job)
            JOB_SECONDS.labels(kind=job.kind, outcome="done" if done else "cached").observe(
                time.perf_counter() - started
            )
            if time.time() > job.due:
                DEADLINES_MISSED.labels(kind=job.kind).inc()
            if done:
                await self.store.redis.hincrby("rf:stats:completed", job.key, 1)
                log.info("%s %s done in %.1f s by %s", job.kind, job.key, time.perf_counter() - started, self.name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            JOB_SECONDS.labels(kind=job.kind, outcome="failed").observe(time.perf_counter() - started)
            if job.attempt < self.settings.job_attempts:
                delay = min(2.0**job.attempt, 60.0)
                log.warning(
                    "%s %s failed (attempt %d), retrying in %.0f s",
                    job.kind,
                    job.key,
                    job.attempt,
                    delay,
                    exc_info=True,
                )
                await self.queue.retry(job, delay)
            else:
                log.error("%s %s failed %d times; giving up", job.kind, job.key, job.attempt, exc_info=True)
                await self.queue.done(job)
                await self.store.redis.hset("rf:failed", job.key, f"{type(exc).__name__}: {exc}"[:500])
                await self.director.events.publish(f"failed:{job.key}")
        finally:
            heartbeat.cancel()

    async def announce(self) -> None:
        """Tell the servers this worker is alive and which queues it serves, at most every ``ANNOUNCE_S``."""
        if time.monotonic() - self._announced >= ANNOUNCE_S:
            self._announced = time.monotonic()
            await self.director.events.publish(f"worker:{self.name}", kinds=list(self.kinds))

    async def _keep_lease(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.queue.lease_s / 3)
            await self.queue.renew(job)
            await self.announce()  # a long render must not make the worker look gone

    async def _write(self, job: Job) -> bool:
        """Write the scene for an open choice, or store its fallback. False if it was already written."""
        payload = job.payload
        target: str = payload["scene"]
        if await self.store.written(target) is not None:
            return False
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
        started = time.perf_counter()
        written: WrittenScene
        try:
            scene_json, provenance = await loop.run_in_executor(
                self.executor, write_scene, request.model_dump_json(), _writer_options(self.settings)
            )
            written = WrittenScene.model_validate({"scene": scene_json, "provenance": provenance})
            count_rejections(target, [p for a in provenance.get("attempts", []) for p in a.get("problems", [])])
        except WriteError as exc:
            if isinstance(exc, WriteFailed):
                count_rejections(target, exc.report.problems)
            log.warning("writer gave up on %s: %s; using the fallback", target, exc)
            written = fallback(story, payload["path"], choice, target, str(exc))
        except Exception as exc:
            if job.attempt < self.settings.job_attempts:
                raise
            # The last attempt crashed: a viewer is waiting, so the authored fallback stands in.
            log.error("writing %s crashed on its last attempt; using the fallback", target, exc_info=True)
            written = fallback(story, payload["path"], choice, target, f"{type(exc).__name__}: {exc}")
        await self.store.save_written(target, written, story, scenes[-1].id, choice.id)
        # The servers' schedulers hear this and queue the scene's clip for the viewers who need it.
        await self.director.events.publish(f"written:{target}", seconds=round(time.perf_counter() - started, 3))
        return True

    async def _render(self, job: Job) -> bool:
        """Render a scene's clip. False if it was already rendered."""
        payload = job.payload
        key: str = payload["clip"]
        if await self.store.clip(key) is not None:
            return False
        story = await self.store.story(payload["story"], payload["version"])
        if story is None:
            raise LookupError(f"story {payload['story']!r} v{payload['version']} is gone")
        scene = await self.director.scene(story, payload["scene"])
        if scene is None:
            raise LookupError(f"scene {payload['scene']!r} is not written")
        profile = PROFILES.get(payload.get("profile") or self.settings.render_profile)
        if profile is None:
            raise LookupError(f"render profile {payload['profile']!r} is unknown to this worker's version")
        relative = Path("clips") / f"{key}.mp4"
        request = RenderRequest(
            scene=scene,
            bible=story.story.bible,
            language=story.story.language,
            profile=profile,
            output=self.settings.media_dir / relative,
        )
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        await self.director.events.publish(f"started:{key}", profile=profile.name, worker=self.name)
        duration, last_frame = await loop.run_in_executor(
            self.executor, render_clip, request.model_dump_json(), _renderer_options(self.settings)
        )
        clip = StoredClip(key=key, file=str(relative), duration=duration, last_frame=last_frame)
        await self.store.save_clip(clip)
        seconds = round(time.perf_counter() - started, 3)
        await self.director.events.publish(
            f"clip:{key}", file=clip.file, duration=duration, seconds=seconds, profile=profile.name
        )
        return True

    async def _produce(self, job: Job) -> bool:
        """Run a linear production to the end. Bad input fails it at once; a crash is retried and resumes."""
        production_id: str = job.payload["production"]
        records = ProductionRecords(self.store.redis)
        record = await records.get(production_id)
        if record is None:
            raise LookupError(f"production {production_id} is gone")
        if record["status"] == "done":
            return False
        await records.update(production_id, status="running", attempt=job.attempt)
        folder = production_folder(self.settings, production_id)
        spec = ProductionSpec.model_validate_json(record["spec"])
        loop = asyncio.get_running_loop()
        try:
            manifest = await loop.run_in_executor(
                self.executor, produce, spec.model_dump_json(), str(folder), options(self.settings, spec.profile)
            )
        except ProductionError as exc:
            await records.update(production_id, status="failed", error=str(exc))
            return True
        except Exception as exc:
            final = job.attempt >= self.settings.job_attempts
            await records.update(
                production_id, status="failed" if final else "retrying", error=f"{type(exc).__name__}: {exc}"[:500]
            )
            raise
        await records.update(production_id, status="done", error="", episodes=len(manifest["episodes"]))
        return True


def count_rejections(scene_id: str, problems: list[str]) -> None:
    """Log and count the content policy's rejections among a write's attempts."""
    rejected = policy_rejections(problems)
    if rejected:
        CONTENT_REJECTIONS.inc(rejected)
        log.warning(
            "content policy rejected %d attempt(s) at %s: %s",
            rejected,
            scene_id,
            "; ".join(p for p in problems if "content policy:" in p)[:500],
        )


def fallback(story: StoryVersion, path: list[str], choice: Choice, target: str, reason: str) -> WrittenScene:
    """The creator's fallback scene for an open choice, else a bridge to the nearest ending."""
    provenance = {"fallback": reason[:500]}
    if choice.open is not None and choice.open.fallback is not None:
        return WrittenScene(redirect=choice.open.fallback, provenance=provenance)
    anchor = next(scene_id for scene_id in reversed(path) if not is_generated(scene_id))
    return WrittenScene(scene=bridge_to_ending(story.story, target, anchor), provenance=provenance)


def process_pool(processes: int) -> ProcessPoolExecutor:
    """Processes for the heavy work. ``spawn``: never fork a process that runs an event loop and threads."""
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))


def stop_pool(executor: ProcessPoolExecutor) -> None:
    """Stop now: a job cut short is leased, so another worker redoes it; waiting could take minutes."""
    processes = list(getattr(executor, "_processes", {}).values())  # no public way before Python 3.14
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def _renderer_options(settings: Settings) -> dict[str, Any]:
    def text(path: Path | None) -> str | None:
        return str(path) if path is not None else None

    return {
        "threads": settings.render_threads,
        "model_dir": text(settings.render_model_dir),
        "c2pa_dir": str(settings.c2pa_dir or settings.data_dir / "c2pa"),
        "certificate": text(settings.c2pa_certificate),
        "key": text(settings.c2pa_key),
        "timestamp_url": settings.c2pa_timestamp_url,
    }


def _writer_options(settings: Settings) -> dict[str, Any]:
    return {
        "writer": settings.writer,
        "url": settings.writer_url,
        "model": settings.writer_model,
        "api_key": settings.writer_api_key.get_secret_value() if settings.writer_api_key else None,
        "dialect": settings.writer_dialect,
        "timeout_s": settings.writer_timeout_s,
        "model_path": str(settings.writer_model_path) if settings.writer_model_path else None,
        "n_threads": settings.writer_threads,
        "max_attempts": settings.writer_attempts,
        "blocked_words": (
            read_word_list(settings.writer_blocked_words.read_text(encoding="utf-8"))
            if settings.writer_blocked_words is not None
            else None
        ),
    }


# -- what runs inside the pool's processes -------------------------------------------------------

_writer: Any = None
_renderers: dict[str, Any] = {}
"""One renderer per family (the animatic; diffusion, whose pipeline draws ``full`` and ``fast``)."""


def write_scene(request_json: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    global _writer
    if _writer is None:
        _writer = _make_writer(options)
    request = WriteRequest.model_validate_json(request_json)
    written = _writer.write_reported(request)
    return written.scene.model_dump(mode="json"), written.report.to_dict()


def make_signer(options: dict[str, Any]) -> ClipSigner:
    """The C2PA signer ``_renderer_options`` describes: the production chain if configured, else the development one."""
    from generation.provenance import ClipSigner

    if options["certificate"] is not None:
        return ClipSigner.production(
            Path(options["certificate"]), Path(options["key"]), timestamp_url=options["timestamp_url"]
        )
    return ClipSigner.development(Path(options["c2pa_dir"]))


def _make_writer(options: dict[str, Any]) -> Any:
    words = options.get("blocked_words")
    policy = WordListPolicy(words) if words is not None else WordListPolicy()
    if options["writer"] == "openai":
        from generation.openai import OpenAIWriter

        return OpenAIWriter(
            options["url"],
            options["model"],
            api_key=options["api_key"],
            dialect=options["dialect"],
            timeout_s=options["timeout_s"],
            max_attempts=options["max_attempts"],
            policy=policy,
        )
    # llama.cpp's OpenMP threads spin while waiting; beside a busy renderer that wastes the core it needs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from generation.llama import LlamaCppWriter

    model_path = Path(options["model_path"]) if options["model_path"] else None
    return LlamaCppWriter(
        model_path=model_path, n_threads=options["n_threads"], max_attempts=options["max_attempts"], policy=policy
    )


def render_clip(request_json: str, options: dict[str, Any]) -> tuple[float, str]:
    from generation.renderers import renderer_for

    request = RenderRequest.model_validate_json(request_json)
    family = "animatic" if request.profile.tier == "animatic" else "diffusion"
    renderer = _renderers.get(family)
    if renderer is None:
        _set_threads(options["threads"])
        # Built here, in the pool process: a c2pa signer holds a native handle that cannot be pickled.
        signer = make_signer(options)
        model_dir = Path(options["model_dir"]) if options["model_dir"] else None
        renderer = renderer_for(request.profile, model_dir=model_dir, signer=signer, threads=options["threads"])
        _renderers[family] = renderer
    request.output.parent.mkdir(parents=True, exist_ok=True)
    clip = renderer.render(request)
    return clip.duration, str(clip.last_frame)


def _set_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
