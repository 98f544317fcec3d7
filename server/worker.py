"""Workers: take jobs from the queue, run the writer or the renderer in a process pool, store results.

The heavy work runs in separate processes so a server's event loop stays responsive; the results are
content-addressed, so a job that runs twice (after a crash) writes the same thing twice, harmlessly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from redis.exceptions import RedisError
from reelfork.generation.production.pipeline import ProductionError
from reelfork.generation.render.dub import LineVoices, line_slots, mouth_tracks, picture_request
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import Renderer, RenderRequest
from reelfork.generation.render.segments import SegmentPlan, StreamPaused, fragment_samples, segment_name
from reelfork.generation.render.soundtrack import timeline_frames
from reelfork.generation.render.stills import ReferenceShelf
from reelfork.generation.render.voice import EspeakSynthesizer
from reelfork.generation.writer.checks import policy_rejections
from reelfork.generation.writer.report import WriteFailed
from reelfork.generation.writer.request import WriteError, WriteRequest
from reelfork.generation.writer.translation import TranslateRequest, translate
from reelfork.generation.writer.translation import slots as slot_texts
from reelfork.narrative.graph import bridge_to_ending
from reelfork.narrative.locales import scene_keys
from reelfork.narrative.state import find_choice, is_generated
from reelfork.narrative.story import Choice, Scene, Story
from reelfork.server.analytics.signals import Audience
from reelfork.server.components import (
    RendererOptions,
    WriterOptions,
    make_renderer,
    make_shelf,
    make_writer,
    renderer_options,
    writer_options,
)
from reelfork.server.director import Director
from reelfork.server.dubbing import STREAMS, VOICES
from reelfork.server.metrics import CONTENT_REJECTIONS, DEADLINES_MISSED, JOB_SECONDS
from reelfork.server.pool import WorkerDied
from reelfork.server.productions import ProductionRecords, ProductionSpec, options, produce, production_folder
from reelfork.server.queue import keys
from reelfork.server.queue.jobs import ClaimedJob, JobKind, JobQueue
from reelfork.server.queue.notices import ClipReady, Failed, SegmentReady, Started, WorkerAlive, Written
from reelfork.server.queue.payloads import ProduceJob, RenderJob, WriteJob
from reelfork.server.settings import Settings
from reelfork.server.store import Store, StoredClip, StoredScene, StoredSegment, StoryVersion, StreamPlan

if TYPE_CHECKING:
    from reelfork.generation.writer.llama import LlamaCppWriter
    from reelfork.generation.writer.openai import OpenAIWriter

log = logging.getLogger(__name__)


ANNOUNCE_S = 60.0
"""How often a worker says it is alive (a ``worker:`` notice with its kinds), idle or at work: the
servers' lookahead counts its render slots from these."""

SEGMENT_POLL_S = 0.02
"""How often a render's folder is looked at for segments to record and announce while it runs."""

Outcome = Literal["done", "cached", "part"]
"""What a job came to: its work done, found done already, or (a render asked for its first segments) a part done."""

WORKER_DIED_PAUSE_S = 1.0
"""How long a worker loop waits after its pool's process died under a job, so it never spins."""


class Worker:
    """One loop taking jobs of some kinds; the heavy part of each runs in ``executor`` (a :class:`WorkerPool`)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: JobQueue,
        director: Director,
        executor: Executor,
        kinds: tuple[JobKind, ...],
    ) -> None:
        self.settings = settings
        self.kinds = kinds
        self.store = store
        self.queue = queue
        self.director = director
        self.executor = executor
        self.name = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._announced = -ANNOUNCE_S
        self.writer_options = writer_options(settings)
        self.renderer_options = renderer_options(settings)
        self.audience = Audience(store.redis)

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

    async def handle(self, job: ClaimedJob) -> None:
        started = time.perf_counter()
        heartbeat = asyncio.create_task(self._keep_lease(job))
        try:
            runs = {"write": self._write, "render": self._render, "diffuse": self._render, "produce": self._produce}
            run = runs[job.kind]
            outcome = await run(job)
            await self.queue.done(job)
            JOB_SECONDS.labels(kind=job.kind, outcome=outcome).observe(time.perf_counter() - started)
            if time.time() > job.due and outcome != "part":
                DEADLINES_MISSED.labels(kind=job.kind).inc()
            if outcome == "done":
                await self.store.redis.hincrby(keys.COMPLETED, job.key, 1)
                log.info("%s %s done in %.1f s by %s", job.kind, job.key, time.perf_counter() - started, self.name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            JOB_SECONDS.labels(kind=job.kind, outcome="failed").observe(time.perf_counter() - started)
            # A dead process has no traceback worth printing: one line per failure.
            traceback = not isinstance(exc, WorkerDied)
            if job.attempt < self.settings.job_attempts:
                delay = min(2.0**job.attempt, 60.0)
                log.warning(
                    "%s %s failed (attempt %d): %s; retrying in %.0f s",
                    job.kind,
                    job.key,
                    job.attempt,
                    exc,
                    delay,
                    exc_info=traceback,
                )
                await self.queue.retry(job, delay)
            else:
                # A job that killed its process every time is a poison pill: given up like any other.
                log.error(
                    "%s %s failed %d times; giving up: %s", job.kind, job.key, job.attempt, exc, exc_info=traceback
                )
                await self.queue.done(job, requeue=False)
                await self.store.redis.hset(keys.FAILED, job.key, f"{type(exc).__name__}: {exc}"[:500])
                await self.director.events.publish(Failed(key=job.key))
            if isinstance(exc, WorkerDied):
                # Whatever keeps killing processes (memory running out) gets a breather before the next job.
                await asyncio.sleep(WORKER_DIED_PAUSE_S)
        finally:
            heartbeat.cancel()

    async def announce(self) -> None:
        """Tell the servers this worker is alive and which queues it serves, at most every ``ANNOUNCE_S``."""
        if time.monotonic() - self._announced >= ANNOUNCE_S:
            self._announced = time.monotonic()
            await self.director.events.publish(WorkerAlive(key=self.name, kinds=list(self.kinds)))

    async def _keep_lease(self, job: ClaimedJob) -> None:
        while True:
            await asyncio.sleep(self.queue.lease_s / 3)
            await self.queue.renew(job)
            await self.announce()  # a long render must not make the worker look gone

    async def _write(self, job: ClaimedJob) -> Outcome:
        """Write the scene for an open choice, or store its fallback (unless it was written already)."""
        payload = job.payload_as(WriteJob)
        target = payload.scene
        if await self.store.written(target) is not None:
            return "cached"
        story = await self.store.story(payload.story, payload.version)
        if story is None:
            raise LookupError(f"story {payload.story!r} v{payload.version} is gone")
        path = [await self.director.scene(story, scene_id) for scene_id in payload.path]
        scenes = [scene for scene in path if scene is not None]
        if len(scenes) != len(path):
            raise LookupError(f"a scene on the path to {target} is missing")
        choice = find_choice(scenes[-1], payload.choice)
        request = WriteRequest(
            story=story.story,
            path=scenes,
            choice=choice,
            scene_id=target,
            must_end=payload.must_end,
            seed=int(target[2:10], 16),
            holding=await self.audience.holding(story.story, story.version),
        )
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        written: StoredScene
        try:
            scene_json, provenance = await loop.run_in_executor(
                self.executor, write_scene, request.model_dump_json(), self.writer_options
            )
            written = StoredScene.model_validate({"scene": scene_json, "provenance": provenance})
            count_rejections(target, [p for a in provenance.get("attempts", []) for p in a.get("problems", [])])
        except WriteError as exc:
            if isinstance(exc, WriteFailed):
                count_rejections(target, exc.report.problems)
            log.warning("writer gave up on %s: %s; using the fallback", target, exc)
            written = fallback(story, payload.path, choice, target, str(exc))
        except Exception as exc:
            if job.attempt < self.settings.job_attempts:
                raise
            # The last attempt crashed: a viewer is waiting, so the authored fallback stands in.
            log.error("writing %s crashed on its last attempt; using the fallback", target, exc_info=True)
            written = fallback(story, payload.path, choice, target, f"{type(exc).__name__}: {exc}")
        await self.store.save_written(target, written, story, scenes[-1].id, choice.id)
        # The servers' schedulers hear this and queue the scene's clip for the viewers who need it.
        await self.director.events.publish(Written(key=target, seconds=round(time.perf_counter() - started, 3)))
        if written.scene is not None:
            await self._translate(story, written.scene)
        return "done"

    async def _translate(self, story: StoryVersion, scene: Scene) -> None:
        """Machine-translate a written scene into the story's other locales, after the viewer has it: the play
        side shows it in their locale (marked machine-translated) once it is stored. A failure only logs."""
        loop = asyncio.get_running_loop()
        for locale in story.story.offered_locales():
            if locale == story.story.language:
                continue
            request = TranslateRequest(
                scene=scene, bible=story.story.bible, source=story.story.language, target=locale, attempts=2
            )
            try:
                texts = await loop.run_in_executor(
                    self.executor, translate_scene, request.model_dump_json(), self.writer_options
                )
            except Exception:
                log.warning("translating %s into %s failed; viewers read its source text", scene.id, locale,
                            exc_info=True)
                continue
            await self.store.save_translation(scene.id, locale, texts)
            log.info("translated %s into %s: %d of %d texts", scene.id, locale, len(texts),
                     len(scene.lines) + len(scene.choices) + 1)

    async def _render(self, job: ClaimedJob) -> Outcome:
        """Render a scene's clip, or its stream up to the job's ``through``."""
        payload = job.payload_as(RenderJob)
        key = payload.clip
        if await self.store.clip(key) is not None:
            return "cached"
        story = await self.store.story(payload.story, payload.version)
        if story is None:
            raise LookupError(f"story {payload.story!r} v{payload.version} is gone")
        scene = await self.director.scene(story, payload.scene)
        if scene is None:
            raise LookupError(f"scene {payload.scene!r} is not written")
        profile = PROFILES.get(payload.profile)
        if profile is None:
            raise LookupError(f"render profile {payload.profile!r} is unknown to this worker's version")
        relative = Path("clips") / f"{key}.mp4"
        folder = self.settings.media_dir / STREAMS / key
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        # The render process needs the scene and the story's bible, persona and locales, never its other scenes.
        story_json, scene_json = story.story.excerpt([scene]).model_dump_json(), scene.model_dump_json()
        media = str(self.settings.media_dir)
        plan = await loop.run_in_executor(
            self.executor, picture_plan, story_json, scene_json, profile.name, media, self.settings.segment_seconds
        )
        await self.store.plan_stream(key, plan)
        planned = await self.store.stream(key)
        plan = planned.plan if planned is not None else plan  # a resumed stream keeps the timeline it started on
        # A render killed mid-stream left segments behind: they are kept, recorded, and not rendered again.
        start = await self._record_segments(key, folder, 0)
        through = payload.through if payload.through is not None and payload.through < plan.count - 1 else None
        if through is not None and start > through:
            return "cached"
        if start:
            log.info("render %s resumes at segment %d of %d (the ones before are stored)", key, start, plan.count)
        await self.director.events.publish(Started(key=key, profile=profile.name, worker=self.name, segment=start))
        render = loop.run_in_executor(
            self.executor,
            render_picture,
            story_json,
            scene_json,
            payload.look,
            payload.locale,
            profile.name,
            media,
            str(relative),
            self.renderer_options,
            plan.slots,
            SegmentPlan(folder=folder, frames=plan.segment_frames, start=min(start, plan.count - 1), through=through),
        )
        stored = start
        while not render.done():
            await asyncio.wait([render], timeout=SEGMENT_POLL_S)
            stored = await self._record_segments(key, folder, stored)
        rendered = await render
        await self._record_segments(key, folder, stored)
        if rendered is None:  # stopped at ``through``: the clip is finished by a later job asking for the rest
            log.info("render %s stored segments %d to %d of %d for now", key, start, through, plan.count)
            return "part"
        _, last_frame = rendered
        duration = plan.duration  # the file says the same, to its microseconds
        clip = StoredClip(key=key, file=str(relative), duration=duration, last_frame=last_frame, slots=plan.slots)
        await self.store.save_clip(clip)
        seconds = round(time.perf_counter() - started, 3)
        await self.director.events.publish(
            ClipReady(key=key, file=clip.file, duration=duration, seconds=seconds, profile=profile.name)
        )
        return "done"

    async def _record_segments(self, key: str, folder: Path, stored: int) -> int:
        """Record and announce the segments stored in ``folder`` from index ``stored`` on; how many are stored."""
        while (folder / segment_name(stored)).exists():
            frames = fragment_samples((folder / segment_name(stored)).read_bytes())
            segment = StoredSegment(index=stored, frames=frames, worker=self.name, stored_at=time.time())
            if await self.store.save_segment(key, segment):
                await self.director.events.publish(
                    SegmentReady(key=key, index=stored, frames=frames, worker=self.name)
                )
            stored += 1
        return stored

    async def _produce(self, job: ClaimedJob) -> Outcome:
        """Run a linear production to the end. Bad input fails it at once; a crash is retried and resumes."""
        production_id = job.payload_as(ProduceJob).production
        records = ProductionRecords(self.store.redis)
        record = await records.get(production_id)
        if record is None:
            raise LookupError(f"production {production_id} is gone")
        if record["status"] == "done":
            return "cached"
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
            return "done"
        except Exception as exc:
            final = job.attempt >= self.settings.job_attempts
            await records.update(
                production_id, status="failed" if final else "retrying", error=f"{type(exc).__name__}: {exc}"[:500]
            )
            raise
        await records.update(production_id, status="done", error="", episodes=len(manifest["episodes"]))
        return "done"


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


def fallback(story: StoryVersion, path: list[str], choice: Choice, target: str, reason: str) -> StoredScene:
    """The creator's fallback scene for an open choice, else a bridge to the nearest ending."""
    provenance = {"fallback": reason[:500]}
    if choice.open is not None and choice.open.fallback is not None:
        return StoredScene(redirect=choice.open.fallback, provenance=provenance)
    anchor = next(scene_id for scene_id in reversed(path) if not is_generated(scene_id))
    return StoredScene(scene=bridge_to_ending(story.story, target, anchor), provenance=provenance)


# -- what runs inside the pool's processes -------------------------------------------------------

_writer: LlamaCppWriter | OpenAIWriter | None = None
_renderers: dict[str, Renderer] = {}
"""One renderer per family (the animatic; diffusion, whose pipeline draws ``full`` and ``fast``)."""
_shelves: dict[tuple[str, str], ReferenceShelf | None] = {}
"""The cast references' shelf per profile and media folder (None: that profile is conditioned on text alone)."""

REFERENCES = "references"
"""Folder of the media dir where cast portraits and place plates are kept, by content key."""


def write_scene(request_json: str, options: WriterOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    global _writer
    if _writer is None:
        _writer = make_writer(options)
    request = WriteRequest.model_validate_json(request_json)
    written = _writer.write_reported(request)
    return written.scene.model_dump(mode="json"), written.report.to_dict()


def translate_scene(request_json: str, options: WriterOptions) -> dict[str, str]:
    """The scene's texts in the request's target locale, by text key (``<scene>/line:<id>``); only those translated."""
    global _writer
    if _writer is None:
        _writer = make_writer(options)
    request = TranslateRequest.model_validate_json(request_json)
    result = translate(_writer, request, _writer.policy)
    keep = {f"{request.scene.id}/{slot}" for slot in slot_texts(request.scene) if slot not in result.untranslated}
    return {key: text for key, text in scene_keys(result.scene).items() if key in keep}


def picture_plan(story_json: str, scene_json: str, profile: str, media: str, segment_seconds: float) -> StreamPlan:
    """A scene's shared picture before it is drawn: every line's slot (fitting any viewer's voice), its length, and
    how its stream is cut."""
    story = Story.model_validate_json(story_json)
    scene = Scene.model_validate_json(scene_json)
    slots = line_slots(story, scene, LineVoices(EspeakSynthesizer(), Path(media) / VOICES))
    fps = PROFILES[profile].fps
    frames = timeline_frames(scene, slots, fps)
    return StreamPlan(fps=fps, frames=frames, segment_frames=max(1, round(segment_seconds * fps)), slots=slots)


def render_picture(
    story_json: str,
    scene_json: str,
    look: str | None,
    locale: str | None,
    profile: str,
    media: str,
    relative: str,
    options: RendererOptions,
    slots: dict[str, float],
    segments: SegmentPlan,
) -> tuple[float, str] | None:
    """Render a scene's shared picture (no text in it; every line in its slot; the lips moving to ``locale``,
    None: the story's language) in segments, from ``segments.start`` on, and join them into its MP4: its duration
    and last frame; None when it stopped after ``segments.through``, the clip unfinished. A diffusion profile is
    conditioned on the cast's portraits and the place's plate (made once, found by content key), never on a clip
    from the path that led here."""
    story = Story.model_validate_json(story_json)
    scene = Scene.model_validate_json(scene_json)
    folder = Path(media)
    voices = LineVoices(EspeakSynthesizer(), folder / VOICES)
    mouths = mouth_tracks(story, scene, locale or story.language, slots, voices)
    request = picture_request(story, scene, look, PROFILES[profile], slots, folder / relative, mouths=mouths)
    if (profile, media) not in _shelves:
        _shelves[profile, media] = make_shelf(request.profile, options, folder / REFERENCES)
    shelf = _shelves[profile, media]
    references = shelf.references(request.scene, request.bible) if shelf is not None else request.references
    request = request.model_copy(update={"segments": segments, "references": references})
    try:
        return render_clip(request.model_dump_json(), options)
    except StreamPaused:
        return None


def render_clip(request_json: str, options: RendererOptions) -> tuple[float, str]:
    request = RenderRequest.model_validate_json(request_json)
    family = "animatic" if request.profile.tier == "animatic" else "diffusion"
    renderer = _renderers.get(family)
    if renderer is None:
        renderer = _renderers[family] = make_renderer(request.profile, options)
    request.output.parent.mkdir(parents=True, exist_ok=True)
    clip = renderer.render(request)
    return clip.duration, str(clip.last_frame)
