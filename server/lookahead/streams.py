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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reelfork.server.lookahead.decisions import job_key
from reelfork.server.lookahead.scheduler import Scheduler
from reelfork.server.queue.jobs import JobKind


def segment_job_keys(node: str, count: int, upgrade: str = "") -> tuple[str, ...]:
    """The scheduler's keys of a scene's clip's ``count`` segments (of its upgrade to ``upgrade``, if given)."""
    return tuple(job_key("render", node, 0, upgrade, segment) for segment in range(count))


def through(scheduler: Scheduler, keys: tuple[str, ...]) -> int | None:
    """The last segment of a clip (its segments' scheduler ``keys``) that its job should render now; None for
    the whole clip (or when the scheduler wants none of it)."""
    first = next((index for index, key in enumerate(keys) if scheduler.job(key) is not None), None)
    if first is None:
        return None
    head = scheduler.job(keys[first])
    eager_only = head is not None and head.eager > 0
    last = first
    for key in keys[first + 1 :]:
        job = scheduler.job(key)
        if job is None or (eager_only and not job.eager):
            break
        last += 1
    return None if last >= len(keys) - 1 else last


def wanted(scheduler: Scheduler, keys: tuple[str, ...], whole: bool = False) -> bool:
    """Whether the scheduler wants any segment of the clip (queued, waiting for the one before, or running); with
    ``whole``, its first (an upgrade: a stream in the best profile is rendered from its first segment on)."""
    if whole:
        return bool(keys) and scheduler.job(keys[0]) is not None
    return any(scheduler.job(key) is not None for key in keys)


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
