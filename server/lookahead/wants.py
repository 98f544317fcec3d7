"""Who wants a job and how badly: what a viewer sees ahead (clips, children), one viewer's interest
in a job, and a queued job's aggregate of them.

The scheduler's bookkeeping (see :mod:`reelfork.server.lookahead.scheduler`): a popular job has thousands of interested
viewers, so its deadline, probability and eagerness are kept up to date as interests come and go
rather than recomputed from all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

WorkKind = Literal["write", "render"]


@dataclass(frozen=True)
class Clip:
    duration_s: float
    """Known once written; an estimate before."""
    rendered: bool = False
    profile: str = ""
    """The profile it was rendered in, when known: a degraded clip is re-rendered in the best one for
    later viewers when there is time."""
    segments: tuple[str, ...] = ()
    """When clips stream in segments: the profile of each segment stored so far, in order (a stream changes
    profile between segments); all of them once ``rendered``, where the shell knows them."""


@dataclass(frozen=True)
class Window:
    """When a scene's choices are offered, in seconds on its own timeline: ``0 <= opens_at < closes_at``.
    A choice may come at any time in it (and moves the viewer on at once); at ``closes_at`` the default is
    taken."""

    opens_at: float
    closes_at: float


@dataclass(frozen=True)
class Child:
    """One choice out of a scene, as the shell knows it now."""

    choice: str
    node: str
    clips: tuple[Clip, ...]
    written: bool = True
    children: tuple[Child, ...] = ()
    """The child's own choices (grandchildren), once it is written; for writing two levels ahead."""
    window: Window | None = None
    """When the child's own choices are offered; None: once it ends (see ``Scheduler.viewer_at``)."""
    paywall: str = ""
    """Non-empty when the child opens an episode this viewer has no entitlement for: the tally (the story)
    whose observed unlock rate weighs its first clip; nothing below it is wanted for this viewer."""


@dataclass(frozen=True)
class Interest:
    deadline: float
    probability: float
    grace_s: float = 0.0
    """How late the clip may probably still be, for this viewer, before they wait: their time to decide."""
    deferrable: bool = False
    """Whether a full render started after this viewer's next choice would still be in time."""
    playing: bool = False
    """Whether it is part of the scene the viewer is watching (a started stream)."""


@dataclass(frozen=True)
class Want:
    kind: WorkKind
    node: str
    clip: int
    duration_s: float
    interest: Interest
    upgrade: bool = False
    segment: int = 0
    after: str = ""
    """The job of the segment this one is conditioned on, while it is not stored: this one waits for it."""


@dataclass
class QueuedJob:
    key: str
    kind: WorkKind
    node: str
    clip: int
    duration_s: float
    upgrade: bool = False
    segment: int = 0
    """Index of the segment within the clip (0 when clips are not segmented)."""
    after: str = ""
    """The job of the segment before, while it is not stored: until then this one cannot start."""
    interests: dict[str, Interest] = field(default_factory=dict)
    running: bool = False
    deadline: float = math.inf
    latest: float = math.inf
    """The deadline plus the interested viewers' likely time to decide: what degrading aims for."""
    probability: float = 0.0
    score: float = math.inf
    profile: str = ""
    started: float = 0.0
    attempts: int = 0
    version: int = 0
    certain: int = 0
    """Interested viewers who surely need it."""
    log_miss: float = 0.0
    """Sum of ``log(1 - p)`` over the others: the chance that none of them needs it, in logs."""
    eager: int = 0
    """Interested viewers for whom it cannot wait for their choice."""
    playing: int = 0
    """Interested viewers watching the stream it belongs to: it is never left to stall for speculative work."""
    stale: bool = False
    """Whether ``deadline`` or ``latest`` may have risen: the interest that set it went."""

    # Aggregates are kept up to date as interests come and go: a popular job has thousands.
    def interest(self, viewer: str, interest: Interest | None) -> None:
        """Set (or with ``None``, withdraw) one viewer's interest."""
        old = self.interests.pop(viewer, None)
        if old is not None:
            self._fold(old, -1)
        if interest is not None:
            self.interests[viewer] = interest
            self._fold(interest, 1)

    def _fold(self, interest: Interest, sign: int) -> None:
        if interest.probability >= 1.0:
            self.certain += sign
        else:
            self.log_miss += sign * math.log1p(-interest.probability)
        if not interest.deferrable:
            self.eager += sign
        if interest.playing:
            self.playing += sign
        latest = interest.deadline + interest.grace_s
        if sign > 0:
            self.deadline = min(self.deadline, interest.deadline)
            self.latest = min(self.latest, latest)
        elif interest.deadline <= self.deadline or latest <= self.latest:
            self.stale = True


@dataclass
class View:
    """A viewer's last observation, kept to recompute their wants when they choose."""

    node: str
    position_s: float
    seen_at: float
    clips: tuple[Clip, ...]
    children: tuple[Child, ...]
    chosen: str | None = None
    wants: dict[str, Interest] = field(default_factory=dict)
    window: Window | None = None
