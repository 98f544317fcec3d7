"""The lookahead scheduler in the server: viewers' positions and choices in, queue changes out.

One :class:`Lookahead` per replica wraps a :class:`reelfork.server.lookahead.scheduler.Scheduler` (the policy
``bench/simulate.py`` measures) on the wall clock. The play connections tell it where each viewer
is (a scene presented, a ``progress`` message), what they chose and when they left; the workers'
notices tell it what started (``started:``, with the profile and the worker), what is done
(``clip:``, ``written:``) and what was given up (``failed:``); the other replicas' ``chose:`` notices
keep its choice probabilities those of the whole audience (the stored tallies are read again when
the notices resume after Redis was away, and every few minutes). It applies the scheduler's decisions
to the shared Redis queue as this replica's wishes (:meth:`JobQueue.want` / :meth:`JobQueue.unwant`),
so a job another replica still wants is never dropped or delayed by this one: it leaves the queue
only when nobody wants it, and a leased job always finishes.

What the scheduler sees of a story: a node per scene (a written scene's id, or an authored one's
within its story version), one clip per scene with its choice window (``choice_window`` of the story
format, from the clip's duration, or an estimate of it before it is rendered), and the choices the
viewer will be offered, two levels down, with conditions evaluated on the state each path leads to.
A choice leading into an episode the viewer may not enter (``may_enter``, from the play connection:
no entitlement for it) is behind the paywall: the scheduler weighs its first clip by the story's
observed unlock rate and looks no deeper. A newly written scene makes the viewers who were waiting
for it observed again, so its clip is queued by the scheduler (and can be cancelled) like any other.

Render profiles: the director's ladder, best first (``REELFORK_RENDER_PROFILE`` then
``REELFORK_RENDER_FALLBACKS``). The scheduler picks one per job from how busy the render slots are
and how soon the clip is due; a job is queued under its clip key in that profile, so switching a
job's profile withdraws one wish and makes another. Real-time factors start from a guess and are
learned from the workers' timings. The slots are the render workers alive (they announce themselves
every minute, idle or not), counted apart for the CPU queue (``render``: the animatic tier) and the
GPU one (``diffuse``), so a fleet of a few GPUs and many CPU workers degrades to the animatic rather
than count the CPUs as GPUs.

Segments (``segment_s``, the ``segment_seconds`` setting): the scheduler wants each clip segment by segment,
an unchosen child only as far as its lead; its segment jobs map onto one queue job per clip key whose
``through`` says how far to render (:mod:`reelfork.server.lookahead.streams`), raised in place when more is
wanted (once the viewer chose). The workers' ``segment:`` notices, and the streams stored when a clip's state
is read, tell the scheduler which segments are done, so each clip's chain of segments goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from redis.exceptions import RedisError
from reelfork.narrative.state import (
    UnknownChoice,
    ViewerState,
    available_choices,
    choose,
    current_episode,
    generated_scene_id,
    is_generated,
)
from reelfork.narrative.story import Scene, choice_window, episode_of
from reelfork.server.director import Director
from reelfork.server.lookahead.scheduler import (
    Budget,
    Cancel,
    Child,
    Clip,
    Decision,
    Profile,
    Scheduler,
    Tuning,
    Window,
    job_key,
)
from reelfork.server.lookahead.streams import Streams
from reelfork.server.lookahead.targets import CLIP_ESTIMATE_S, Target
from reelfork.server.queue.jobs import JobKind, JobQueue, render_kind
from reelfork.server.queue.notices import (
    AnyNotice,
    Chose,
    ClipReady,
    Failed,
    Resumed,
    SegmentReady,
    Started,
    WorkerAlive,
    Written,
)
from reelfork.server.queue.payloads import write_job
from reelfork.server.store import StoredStream, StoryVersion

log = logging.getLogger(__name__)

RENDER_RTF = 1.0
"""Render seconds per clip second assumed for the best profile until workers report their timings."""
FALLBACK_COST = 0.5
"""Each fallback profile is assumed to cost this much of the one above it, until measured."""
DEPTH = 2
"""Levels of scenes below the current one that are looked at (and rendered ahead when likely)."""
TICK_S = 1.0
"""How often the queue is laid out again as time passes."""
WORKER_SEEN_S = 200.0
"""A render worker counts as a slot for this long after it last said it is alive (it does every
``reelfork.server.worker.ANNOUNCE_S``, idle or busy)."""
RECOUNT_S = 300.0
"""How often the stored choice tallies are read again, in case a ``chose:`` notice was lost."""
MAX_TARGETS = 50_000
DRIFT_S = 1.5
"""A ``progress`` report within this many seconds of where playback was expected to be tells the scheduler
nothing new (it counts playback on by itself): only a pause, a seek or a new scene does."""
REFRESH_S = 15.0
"""A viewer is observed again at least this often while they report progress (clips rendered meanwhile)."""

MayEnter = Callable[[int], bool]
"""Whether the viewer may enter an episode (by number): free, unlocked, or no paywall."""


class WallClock:
    def now(self) -> float:
        return time.time()


@dataclass
class Observation:
    """A viewer's last position, kept to observe them again when a scene they may reach is written."""

    story: StoryVersion
    state: ViewerState
    scene: Scene
    position_s: float
    at: float
    writes: set[str] = field(default_factory=set)
    """The scheduler's write jobs for the scenes the viewer's choices lead to."""
    may_enter: MayEnter | None = None


def window_of(story: StoryVersion, scene: Scene, clip: Clip) -> Window | None:
    """When ``scene``'s choices are offered on its clip's timeline (from an estimate until it is rendered)."""
    if scene.ending:
        return None
    window = choice_window(story.story, scene, clip.duration_s)
    return Window(window.opens_at, window.closes_at)


def streamed(ladder: tuple[str, ...], streams: list[StoredStream | None]) -> Clip:
    """An unrendered clip as its streams show it (one per profile, best first, None where not begun): its planned
    length, and the segments stored of the best one that has any (a stream keeps to its profile)."""
    planned = [(profile, stream) for profile, stream in zip(ladder, streams, strict=True) if stream is not None]
    if not planned:
        return Clip(CLIP_ESTIMATE_S)
    profile, stream = next(((p, s) for p, s in planned if s.segments), planned[0])
    return Clip(stream.duration, segments=(profile,) * len(stream.segments))


def node_of(story: StoryVersion, scene_id: str) -> str:
    """A scene's name in the scheduler: written scene ids are global, authored ones per story version."""
    return scene_id if is_generated(scene_id) else f"{story.digest[:16]}:{scene_id}"


def shell_tuning(tuning: Tuning) -> Tuning:
    """``tuning`` as this shell runs it: the workers retry failed jobs themselves (their ``failed:`` notice is
    final), the scenes it describes reach ``DEPTH`` levels down, and a held segment is told on the first tick
    after its release, so it is released a tick sooner."""
    hold_s = None if tuning.hold_s is None else tuning.hold_s + TICK_S
    return replace(tuning, max_attempts=1, render_depth=DEPTH, hold_s=hold_s)


class Lookahead:
    def __init__(
        self,
        director: Director,
        queue: JobQueue,
        replica: str,
        render_slots: int,
        segment_s: float = 0.0,
        tuning: Tuning | None = None,
    ) -> None:
        """``segment_s``: the length of the segments clips stream in (0: a clip is one job, played once complete).
        ``tuning``: the policy's (default ``Tuning()``; ``METERED`` for GPUs paid by the second)."""
        self.director = director
        self.store = director.store
        self.queue = queue
        self.replica = replica
        ladder = enumerate(director.profiles)
        profiles = tuple(
            Profile(name, RENDER_RTF * FALLBACK_COST**rank, measured=False, pool=render_kind(director.tiers[name]))
            for rank, name in ladder
        )
        self._slots = max(1, render_slots)
        budget = Budget(render_slots=self._slots, profiles=profiles, segment_s=segment_s)
        self.scheduler = Scheduler(WallClock(), budget, shell_tuning(tuning or Tuning()))
        self._targets: OrderedDict[str, Target] = OrderedDict()
        """Scheduler job key → where it goes in the queue."""
        self._queued_as: dict[str, tuple[JobKind, str]] = {}
        """Scheduler job key → the queue and key this replica wants it under (the profile it was told)."""
        self._jobs_of: dict[str, str] = {}
        """Queue key (a clip key in any profile, a scene id) → scheduler job key, to read the notices."""
        self._observed: dict[str, Observation] = {}
        self._workers: dict[tuple[str, str], float] = {}
        """(pool, worker) → when the worker last said it serves that pool (``worker:`` notices)."""
        self._lock = asyncio.Lock()
        """Decisions reach Redis in the order the scheduler made them."""
        self._stories: dict[str, StoryVersion] = {}
        """The story versions whose stored choice tallies were read, by digest."""
        self._recounted = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._to_observe: dict[str, None] = {}
        self._observing: asyncio.Task[None] | None = None
        self.streams = Streams(director, self.scheduler, queue, replica, self._targets, self._jobs_of)
        """This replica's wishes for the clips streamed in segments."""

    # -- observations ------------------------------------------------------------------------

    async def viewer_at(
        self,
        viewer: str,
        story: StoryVersion,
        state: ViewerState,
        scene: Scene,
        position_s: float,
        *,
        unless_moved: Observation | None = None,
        may_enter: MayEnter | None = None,
    ) -> None:
        """``viewer`` is ``position_s`` seconds into ``scene``'s clip (0 when it is presented), or past its
        end while the window stays open. ``may_enter``: which episodes the viewer may enter (None: all);
        a viewer held at the paywall of ``scene``'s episode is not observed there (they have not unlocked)."""
        seen = self._observed.get(viewer)
        if unless_moved is None and seen is not None and self._as_expected(seen, story, state, scene, position_s):
            return  # most progress reports: playing on as the scheduler already assumes
        episode = current_episode(story.story, state).number
        if may_enter is not None and not may_enter(episode):
            return
        await self._load_counts(story)
        writes: set[str] = set()
        children = await self._children(story, state, scene, DEPTH, writes, episode, may_enter)
        (clip,) = await self._clips(story, [scene])
        if not clip.rendered:
            position_s = 0.0  # nothing to play yet: the viewer waits at the start, whatever the client says
        window = window_of(story, scene, clip)
        async with self._lock:
            if unless_moved is not None and self._observed.get(viewer) is not unless_moved:
                return  # observed again meanwhile, from a newer position
            self._observed[viewer] = Observation(story, state, scene, position_s, time.time(), writes, may_enter)
            self.scheduler.viewer_at(viewer, node_of(story, scene.id), position_s, (clip,), children, window)
            await self._apply(self.scheduler.decisions())

    @staticmethod
    def _as_expected(
        seen: Observation, story: StoryVersion, state: ViewerState, scene: Scene, position_s: float
    ) -> bool:
        elapsed = time.time() - seen.at
        expected = seen.position_s + elapsed
        return (
            elapsed < REFRESH_S
            and abs(position_s - expected) <= DRIFT_S
            and seen.scene.id == scene.id
            and seen.story.digest == story.digest
            and seen.state == state
        )

    async def viewer_chose(self, viewer: str, story: StoryVersion, scene_id: str, choice_id: str) -> None:
        """Counted here, and told to the other replicas, whose probabilities follow the whole audience."""
        node = node_of(story, scene_id)
        self._background(self.director.events.publish(Chose(key=node, choice=choice_id, replica=self.replica)))
        async with self._lock:
            self.scheduler.viewer_chose(viewer, node, choice_id)
            await self._apply(self.scheduler.decisions())

    async def viewer_left(self, viewer: str) -> None:
        async with self._lock:
            self._observed.pop(viewer, None)
            self.scheduler.viewer_left(viewer)
            await self._apply(self.scheduler.decisions())

    def on_event(self, notice: AnyNotice) -> None:
        """A worker's notice (see :class:`reelfork.server.queue.events.Events`)."""
        key = notice.key
        if isinstance(notice, Resumed):
            self._background(self.recount())
        elif isinstance(notice, Chose):
            if notice.replica != self.replica:
                self.scheduler.count(key, notice.choice)
        elif isinstance(notice, Started):
            self._started(notice)
        elif isinstance(notice, SegmentReady):
            if self.streams.stored(notice):
                self._background(self._settle())
        elif isinstance(notice, WorkerAlive):
            for queue in notice.kinds:
                if queue in ("render", "diffuse"):
                    self._workers[(queue, key)] = time.time()
        elif isinstance(notice, ClipReady):
            job = self._jobs_of.get(key)
            if job is not None and self.streams.segmented:
                self.streams.over(job, key, failed=False)
                self._background(self._settle())
            elif job is not None:
                duration = notice.duration or CLIP_ESTIMATE_S
                seconds = notice.seconds or RENDER_RTF * duration
                self.scheduler.job_done(job, seconds, profile=notice.profile, duration_s=duration)
                self._queued_as.pop(job, None)
                self._background(self._settle())
        elif isinstance(notice, Written):
            job = job_key("write", key)
            self.scheduler.job_done(job, notice.seconds or self.scheduler.budget.write_s)
            self._queued_as.pop(job, None)
            waiting = [viewer for viewer, seen in self._observed.items() if job in seen.writes]
            self._to_observe.update(dict.fromkeys(waiting))
            if waiting and self._observing is None:
                self._observing = asyncio.get_running_loop().create_task(self._observe_again())
        elif isinstance(notice, Failed):
            job = self._jobs_of.get(key, job_key("write", key))
            if self.streams.segmented and job.startswith("render:"):
                self.streams.over(job, key, failed=True)
                self._background(self._settle())
                return
            self.scheduler.job_failed(job)
            self._queued_as.pop(job, None)
            self._background(self._settle())

    async def run(self) -> None:
        """Lay the queue out again every ``TICK_S`` as time passes (profiles follow the deadlines)."""
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._count_slots()
                if time.monotonic() - self._recounted > RECOUNT_S:
                    await self.recount()
                async with self._lock:
                    self.streams.released(self.scheduler.tick())
                    await self._apply(self.scheduler.decisions())
            except RedisError:
                log.warning("lookahead could not reach Redis; trying again", exc_info=True)
            except Exception:  # a bug must not stop the lookahead for every viewer of this replica
                log.exception("lookahead tick failed")

    def _started(self, notice: Started) -> None:
        job = self._jobs_of.get(notice.key)
        if job is None:
            return
        target = self._targets.get(job)
        if not self.streams.segmented or target is None:
            self.scheduler.job_started(job, notice.worker, profile=notice.profile)
            return
        self.streams.started(job, target, notice)

    def _count_slots(self) -> None:
        """Each pool's slots: its workers alive lately, at least the configured number."""
        now = time.time()
        for seen in [s for s, at in self._workers.items() if now - at > WORKER_SEEN_S]:
            del self._workers[seen]
        for pool in {profile.pool for profile in self.scheduler.budget.profiles}:
            workers = sum(1 for worker_pool, _ in self._workers if worker_pool == pool)
            self.scheduler.resize(max(self._slots, workers), pool)

    async def _observe_again(self) -> None:
        """Observe the viewers a newly written scene is a choice away from, one at a time: when a scene
        hundreds of viewers are heading for is written, their observations do not all land at once."""
        try:
            while self._to_observe:
                viewer = next(iter(self._to_observe))
                del self._to_observe[viewer]
                seen = self._observed.get(viewer)
                if seen is not None:
                    position = seen.position_s + time.time() - seen.at
                    observe = self.viewer_at(
                        viewer,
                        seen.story,
                        seen.state,
                        seen.scene,
                        position,
                        unless_moved=seen,
                        may_enter=seen.may_enter,
                    )
                    await self._quietly(observe)
        finally:
            self._observing = None

    async def _settle(self) -> None:
        async with self._lock:
            await self._apply(self.scheduler.decisions())

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quietly(coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            await coroutine
        except RedisError:  # Redis away: the next observation or tick catches up
            pass
        except Exception:
            log.exception("lookahead background work failed")

    # -- the story as the scheduler sees it --------------------------------------------------

    async def _load_counts(self, story: StoryVersion) -> None:
        """The audience's choices so far (all replicas, before this one started), once per story version;
        later ones arrive as ``chose:`` notices, and :meth:`recount` catches up on any that were missed."""
        if story.digest in self._stories:
            return
        self._stories[story.digest] = story
        await self._read_counts(story)

    async def recount(self) -> None:
        """Read the stored choice tallies again: a ``chose:`` notice is lost while this replica's
        subscription is down, or when the replica that chose dies before telling."""
        self._recounted = time.monotonic()
        for story in list(self._stories.values()):
            await self._read_counts(story)

    async def _read_counts(self, story: StoryVersion) -> None:
        for (scene_id, choice_id), times in (await self.store.choice_counts(story)).items():
            self.scheduler.count_total(node_of(story, scene_id), choice_id, times)

    async def _children(
        self,
        story: StoryVersion,
        state: ViewerState,
        scene: Scene,
        depth: int,
        writes: set[str],
        episode: int,
        may_enter: MayEnter | None,
    ) -> tuple[Child, ...]:
        """The scenes the choices offered in ``scene`` (of ``episode``) lead to, written or not, with the
        choices each will offer (on the state that path leads to) ``depth - 1`` levels further down; those
        in an episode the viewer may not enter are behind the paywall, and nothing below them is looked at."""
        if scene.ending:
            return ()
        found: list[tuple[str, str, Scene | None]] = []
        for choice in available_choices(scene, state):
            target = choice.target or generated_scene_id(story.digest, scene.id, choice.id)
            child = await self.director.scene(story, target)
            if child is not None or is_generated(target):
                found.append((choice.id, target, child))
        clips = iter(await self._clips(story, [child for _, _, child in found if child is not None]))
        children: list[Child] = []
        for choice_id, target, child in found:
            # Written scenes belong to their parent's episode.
            number = episode if is_generated(target) else episode_of(story.story, target).number
            paywall = story.story.id if may_enter is not None and not may_enter(number) else ""
            if child is None:
                job = job_key("write", target)
                self._remember(job, Target({"": target}, story, target, write_job(story, state, choice_id, target)))
                if depth == DEPTH:  # a choice away: its clip is wanted as soon as it is written
                    writes.add(job)
                estimate = (Clip(CLIP_ESTIMATE_S),)
                children.append(Child(choice_id, target, estimate, written=False, paywall=paywall))
                continue
            clip = next(clips)
            below: tuple[Child, ...] = ()
            if depth > 1 and not paywall:
                try:
                    after = choose(state, scene, choice_id, child.id, story=story.story)
                except (UnknownChoice, ValueError):
                    after = None  # its effects cannot apply on this path (say, a variable the session lacks)
                if after is not None:
                    below = await self._children(story, after, child, depth - 1, writes, number, may_enter)
            window = window_of(story, child, clip)
            children.append(Child(choice_id, node_of(story, child.id), (clip,), True, below, window, paywall))
        return tuple(children)

    async def _clips(self, story: StoryVersion, scenes: list[Scene]) -> list[Clip]:
        """Each scene's one clip as the scheduler sees it (rendered in the best profile there is, if any);
        remembers how to queue its render in each profile."""
        ladder = self.director.profiles
        keys = [self.director.clip_keys(story, scene) for scene in scenes]
        stored = await self.store.best_clips(keys) if scenes else []
        # A clip not rendered in any profile yet may be streaming: its stored segments (one round trip for all).
        unrendered = [number for number, best in enumerate(stored) if best is None] if self.streams.segmented else []
        found = await self.store.streams([key for n in unrendered for key in keys[n]]) if unrendered else []
        streams = {n: found[i * len(ladder) : (i + 1) * len(ladder)] for i, n in enumerate(unrendered)}
        clips: list[Clip] = []
        for number, (scene, scene_keys) in enumerate(zip(scenes, keys, strict=True)):
            rendered = stored[number]
            if rendered is None:
                clip = streamed(ladder, streams.get(number, [None] * len(ladder)))
            else:
                clip = Clip(rendered[1].duration, rendered=True, profile=ladder[rendered[0]])
            node = node_of(story, scene.id)
            job = job_key("render", node)
            target = Target(dict(zip(ladder, scene_keys, strict=True)), story, scene.id, None, node, clip.duration_s)
            self._remember(job, target)
            upgrade = job_key("render", node, upgrade=ladder[0])
            self._remember(upgrade, replace(target, keys={ladder[0]: scene_keys[0]}, upgrade=ladder[0]))
            for key in scene_keys:
                self._jobs_of.setdefault(key, job)
            if clip.segments:  # stored while this replica was not listening, or before it observed the viewer
                self.streams.found(job, target, clip.segments[0], len(clip.segments))
            clips.append(clip)
        return clips

    def _remember(self, job: str, target: Target) -> None:
        self._targets[job] = target
        self._targets.move_to_end(job)
        while len(self._targets) > MAX_TARGETS:
            old_job, old = self._targets.popitem(last=False)
            self._queued_as.pop(old_job, None)
            for key in old.keys.values():
                if self._jobs_of.get(key) == old_job:
                    del self._jobs_of[key]

    # -- decisions to the queue --------------------------------------------------------------

    async def _apply(self, decisions: list[Decision]) -> None:
        streams: dict[str, None] = {}
        for decision in decisions:
            if self.streams.segmented and decision.key.startswith("render:"):
                job = self.streams.told(decision)
                if job is not None:
                    streams[job] = None
                continue
            target = self._targets.get(decision.key)
            if target is None:
                log.warning("scheduler decided on %s, which this replica no longer knows", decision.key)
                continue
            # One wish per scheduler job: two scenes sharing one clip are two wishes, withdrawn apart.
            wanter = f"{self.replica}/{decision.key}"
            told = self._queued_as.get(decision.key)
            if isinstance(decision, Cancel):
                if told is not None:
                    del self._queued_as[decision.key]
                    await self.queue.unwant(*told, wanter)
                continue
            kind, key, payload = target.job(decision.profile, self.director.tiers)
            if told is not None and told != (kind, key):
                await self.queue.unwant(*told, wanter)
            self._queued_as[decision.key] = (kind, key)
            self._jobs_of[key] = decision.key
            await self.queue.want(kind, key, payload, decision.score, wanter)
        if self.streams.segmented:
            await self.streams.ask(streams)
