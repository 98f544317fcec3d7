"""A clip streamed in segments, as the lookahead asks the shared queue for it.

The scheduler wants a clip segment by segment (``render:<node>#0.<k>``, each after the one before it); the
queue holds one render job per clip key, so two workers never write one stream, and a job renders from the
first segment not stored up to its ``through`` (:attr:`reelfork.server.queue.payloads.RenderJob.through`).
A :class:`Wish` gathers the segment jobs of one clip (its render, or its upgrade in the best profile) into
that one job, wanted by this replica:

* it is queued at the lowest score the scheduler gave any of its segments, in the profile it gave the first
  one (a stream, once begun, stays in its profile: the segments of one clip key are one picture);
* it asks for the segments up to :func:`through`: from the first one still wanted, on over those that cannot
  wait for the viewer's choice (an unchosen child: its lead), or over every one wanted when the first can wait
  (the rest of a speculated clip, rendered on a slot that would otherwise idle); the whole clip (None) when
  that reaches its last segment;
* a wish for more raises the job's ``through`` in place (:meth:`reelfork.server.queue.jobs.JobQueue.want`); it
  is withdrawn once the scheduler wants none of its segments.

An upgrade (a degraded clip rendered again in the best profile) is a whole clip: that profile's stream starts at
its first segment, so it is wished for only while the scheduler wants that segment's upgrade (there is time to
render it all before a later viewer reaches it), not for the later segments of a clip being played now.

:class:`Streams` keeps this replica's wishes: the engine hands it the scheduler's segment decisions and the workers'
notices of a stream begun, a segment stored, a clip finished or given up, and it asks the queue for what follows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from reelfork.server.director import Director
from reelfork.server.lookahead.decisions import Cancel, Decision, Enqueue, job_key, segment_keys
from reelfork.server.lookahead.scheduler import Scheduler
from reelfork.server.lookahead.segments import segment_lengths
from reelfork.server.lookahead.targets import Target
from reelfork.server.lookahead.wants import QueuedJob
from reelfork.server.queue.jobs import JobKind, JobQueue
from reelfork.server.queue.notices import SegmentReady, Started

log = logging.getLogger(__name__)


def _wanted(scheduler: Scheduler, key: str) -> QueuedJob | None:
    """The scheduler's job for a segment, unless it has none or holds it back (unlikely work that waits for the
    choice: :meth:`Scheduler.held`)."""
    job = scheduler.job(key)
    return None if job is None or scheduler.held(job) else job


def through(scheduler: Scheduler, keys: tuple[str, ...]) -> int | None:
    """The last segment of a clip (its segments' scheduler ``keys``) that its job should render now; None for
    the whole clip (or when the scheduler wants none of it)."""
    found = next(((index, job) for index, key in enumerate(keys) if (job := _wanted(scheduler, key)) is not None), None)
    if found is None:
        return None
    first, head = found
    eager_only = head.eager > 0
    last = first
    for key in keys[first + 1 :]:
        job = _wanted(scheduler, key)
        if job is None or (eager_only and not job.eager):
            break
        last += 1
    return None if last >= len(keys) - 1 else last


def wanted(scheduler: Scheduler, keys: tuple[str, ...], whole: bool = False) -> bool:
    """Whether the scheduler wants any segment of the clip (queued, waiting for the one before, or running); with
    ``whole``, its first (an upgrade: a stream in the best profile is rendered from its first segment on)."""
    if whole:
        return bool(keys) and _wanted(scheduler, keys[0]) is not None
    return any(_wanted(scheduler, key) is not None for key in keys)


def scheduled(scheduler: Scheduler, keys: tuple[str, ...]) -> float | None:
    """The lowest score the scheduler gives a segment of the clip that it has not told of (the one a worker renders,
    and those waiting for it): what the rest of a stream being rendered is asked for at, deferred when it can wait
    for the viewer's choice."""
    return min((job.score for key in keys if (job := _wanted(scheduler, key)) is not None), default=None)


@dataclass
class Wish:
    """This replica's wish for one clip's stream: the one queue job its segment jobs map onto."""

    told: dict[str, tuple[int, float, str]] = field(default_factory=dict)
    """Segment job → its index, and the score and profile the scheduler last gave it, while it is queued."""
    queued_as: tuple[JobKind, str, str] | None = None
    """The queue, clip key and profile this replica wants it under."""
    asked: tuple[float, int | None] | None = None
    """The score and ``through`` last asked for."""
    begun: bool = False
    """Whether a worker began the stream: its later segments stay in its profile."""
    since: float = 0.0
    """When the segment being rendered began (epoch seconds): its render time, once it is stored."""

    def score(self) -> float | None:
        """The lowest score of the segments told; None when none is (the rest waits for the one before)."""
        return min((score for _, score, _ in self.told.values()), default=None)

    def profile(self) -> str | None:
        """The profile the scheduler gave the first segment told."""
        return min(self.told.values())[2] if self.told else None


class Streams:
    """This replica's wishes for the clips it streams in segments: what the scheduler tells of their segment jobs
    and what the workers say of their segments in, one queue job per clip out."""

    def __init__(
        self,
        director: Director,
        scheduler: Scheduler,
        queue: JobQueue,
        replica: str,
        targets: Mapping[str, Target],
        jobs_of: dict[str, str],
    ) -> None:
        """``targets`` and ``jobs_of``: the engine's own (scheduler job key → where it goes in the queue; queue key →
        scheduler job key, which a clip key joins once a wish asks for it)."""
        self.director = director
        self.scheduler = scheduler
        self.queue = queue
        self.replica = replica
        self._targets = targets
        self._jobs_of = jobs_of
        self._wishes: dict[str, Wish] = {}
        """Clip job (a scene's render or upgrade) → this replica's wish for its stream, with segments."""
        self._segment_of: dict[str, tuple[str, int]] = {}
        """A segment's scheduler job key → its clip job and index, while told."""
        self._dirty: dict[str, None] = {}
        """Clip jobs whose segments changed outside a decision (one stored): looked at again with the next ones."""
        self._rendering: dict[str, None] = {}
        """Clip jobs a worker renders now: what it renders may grow before it stops (the viewer chose)."""

    @property
    def segmented(self) -> bool:
        """Whether clips stream in segments (``segment_s`` set); else a clip is one job and no stream is kept."""
        return self.scheduler.budget.segment_s > 0

    def started(self, job: str, target: Target, notice: Started) -> None:
        """A worker began rendering clip job ``job``'s stream, at segment ``notice.segment``."""
        wish = self._wishes.get(job)
        if wish is not None:
            wish.begun, wish.since = True, time.time()
        self._rendering[job] = None
        keys = target.segment_keys(self.scheduler.budget.segment_s)
        if notice.segment < len(keys):
            self.scheduler.job_started(keys[notice.segment], notice.worker, profile=notice.profile)

    def stored(self, notice: SegmentReady) -> bool:
        """A worker stored a segment: the scheduler's job for it is done (timed from the one before), and the
        worker goes on with the next one if this replica asked for it. Whether the segment was one this replica
        knows (the queue is then laid out again)."""
        job = self._jobs_of.get(notice.key)
        target = self._targets.get(job) if job is not None else None
        if job is None or target is None or not self.segmented or notice.key not in target.keys.values():
            return False
        profile = target.profile_of(notice.key)
        wish = self._wishes.get(job)
        now = time.time()
        seconds = now - wish.since if wish is not None and wish.since else None
        self._done_segments(target, profile, [notice.index], seconds)
        following = notice.index + 1
        keys = target.segment_keys(self.scheduler.budget.segment_s)
        limit = wish.asked[1] if wish is not None and wish.asked is not None else -1
        if wish is not None and following < len(keys) and (limit is None or limit >= following):
            wish.since = now
            self.scheduler.job_started(keys[following], notice.worker, profile=profile)
        else:
            self._rendering.pop(job, None)
        self._dirty[job] = None
        return True

    def released(self, segments: list[str]) -> None:
        """The scheduler stopped holding these segment jobs back (:meth:`Scheduler.tick`): their clips' wishes are
        looked at again with the next decisions, so a stream's job renders them though they wait for the segment
        before them (and are told only once it is stored)."""
        for key in segments:
            job = self.scheduler.job(key)
            clip = job_key("render", job.node, job.clip) if job is not None else None
            if clip is not None and clip in self._wishes:
                self._dirty[clip] = None

    def found(self, job: str, target: Target, profile: str, count: int) -> None:
        """Clip job ``job``'s first ``count`` segments were found stored in ``profile`` (while this replica was not
        listening, or before it observed the viewer): done, and the wish is looked at again."""
        self._done_segments(target, profile, range(count), None)
        self._dirty[job] = None

    def _done_segments(self, target: Target, profile: str, indexes: range | list[int], seconds: float | None) -> None:
        """The clip's segments ``indexes`` are stored in ``profile``: their render jobs (and their upgrades', in
        the best profile) are done, in ``seconds`` each when measured."""
        segment_s = self.scheduler.budget.segment_s
        count = len(segment_lengths(target.duration_s, segment_s))
        best = self.director.profiles[0]
        variants = [segment_keys(target.node, 0, count)]
        if profile == best:
            variants.append(segment_keys(target.node, 0, count, best))
        for index in indexes:
            for keys in variants:
                job = self.scheduler.job(keys[index]) if index < count else None
                if job is None:
                    continue
                # Unmeasured (stored while this replica was not listening): the current estimate, learning nothing.
                work = self.scheduler.budget.work_s(job.duration_s)
                took = seconds if seconds is not None else self.scheduler.rtf(profile) * work
                self.scheduler.job_done(keys[index], took, profile=profile, duration_s=job.duration_s)

    def over(self, job: str, key: str, failed: bool) -> None:
        """A worker finished clip ``key`` (or gave up on it): every segment of it is done (failed)."""
        target = self._targets.get(job)
        self._forget(job)
        if target is None or key not in target.keys.values():
            return
        segments = target.segment_keys(self.scheduler.budget.segment_s)
        if not failed:
            self._done_segments(target, target.profile_of(key), range(len(segments)), None)
            return
        for segment in segments:
            if self.scheduler.job(segment) is not None:
                self.scheduler.job_failed(segment)

    def told(self, decision: Decision) -> str | None:
        """Record what the scheduler told of a segment job; the clip job it belongs to (None: unknown)."""
        if isinstance(decision, Enqueue):
            plain = job_key("render", decision.node, decision.clip, segment=decision.segment)
            upgrade = "" if decision.key == plain else self.director.profiles[0]
            job = job_key("render", decision.node, decision.clip, upgrade)
            if job not in self._targets:
                log.warning("scheduler queued %s, of a clip this replica no longer knows", decision.key)
                return None
            self._segment_of[decision.key] = (job, decision.segment)
        found = self._segment_of.get(decision.key)
        if found is None:
            return None
        job, segment = found
        wish = self._wishes.setdefault(job, Wish())
        if isinstance(decision, Cancel):
            wish.told.pop(decision.key, None)
            del self._segment_of[decision.key]
        else:
            wish.told[decision.key] = (segment, decision.score, decision.profile)
        return job

    async def ask(self, jobs: dict[str, None]) -> None:
        """Bring the wishes for clip jobs ``jobs`` (those the decisions told of) in line with the scheduler, and
        those whose segments changed since, and those a worker renders now too: the viewer may have chosen one,
        which now wants all of it."""
        jobs.update(self._dirty)
        jobs.update(self._rendering)
        self._dirty.clear()
        for job in jobs:
            await self._reconcile(job)

    async def _reconcile(self, job: str) -> None:
        """Bring this replica's wish for a clip's stream in line with the scheduler's jobs for its segments."""
        wish = self._wishes.get(job)
        if wish is None:
            return
        target = self._targets.get(job)
        keys = target.segment_keys(self.scheduler.budget.segment_s) if target is not None else ()
        for gone in [key for key in wish.told if self.scheduler.job(key) is None]:
            del wish.told[gone]
            self._segment_of.pop(gone, None)
        wanter = f"{self.replica}/{job}"
        if target is None or not wanted(self.scheduler, keys, whole=bool(target.upgrade) and not wish.begun):
            self._forget(job)
            if wish.queued_as is not None:
                await self.queue.unwant(wish.queued_as[0], wish.queued_as[1], wanter)
            return
        score = wish.score() if wish.told else scheduled(self.scheduler, keys)
        profile = wish.queued_as[2] if wish.queued_as is not None and (wish.begun or not wish.told) else wish.profile()
        if score is None or profile is None:
            return  # none of its segments can start yet
        limit = None if target.upgrade else through(self.scheduler, keys)
        kind, key, payload = target.job(profile, self.director.tiers, limit)
        if wish.queued_as is not None and wish.queued_as[:2] != (kind, key):
            await self.queue.unwant(wish.queued_as[0], wish.queued_as[1], wanter)
            wish.asked = None
        wish.queued_as = (kind, key, profile)
        self._jobs_of[key] = job
        if wish.asked != (score, limit):
            wish.asked = (score, limit)
            await self.queue.want(kind, key, payload, score, wanter)

    def _forget(self, job: str) -> None:
        wish = self._wishes.pop(job, None)
        self._rendering.pop(job, None)
        for key in wish.told if wish is not None else ():
            self._segment_of.pop(key, None)
