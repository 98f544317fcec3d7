"""What the scheduler may spend: render profiles, the slots of each pool of workers, the writers.

A *pool* is the workers that render a set of profiles: in a fleet, CPU workers take the animatic
tier (the ``render`` queue) and GPU workers the diffusion profiles (``diffuse``), so a job degraded
from ``full`` to ``animatic`` moves to other workers, which may be idle while the GPUs are not.
:class:`Slots` lays jobs out over the pools to choose each one's profile.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_POOL = "render"


@dataclass(frozen=True)
class Profile:
    name: str
    rtf: float
    """Real-time factor on one render slot: render seconds per second of clip."""
    measured: bool = True
    """Whether ``rtf`` is a measurement; a guess is replaced by the first timing reported, not averaged."""
    pool: str = DEFAULT_POOL
    """The workers that render this profile; the profiles of one pool share its slots."""


@dataclass(frozen=True)
class Budget:
    render_slots: int
    """Render workers that run at once (GPUs), in each pool not in ``pool_slots``."""
    profiles: tuple[Profile, ...]
    """Best first; the last is the cheapest fallback."""
    write_slots: int = 1
    write_s: float = 3.0
    """Estimated seconds to write one scene."""
    pool_slots: Mapping[str, int] = field(default_factory=dict)
    """Render workers per pool, where known."""
    segment_s: float = 0.0
    """Length of the segments a clip is rendered and streamed in (see :mod:`reelfork.server.lookahead.segments`);
    0: a clip is one job, played once complete."""
    overlap_s: float = 0.0
    """Seconds of conditioning frames each segment re-reads, rendered at the profile's real-time factor on top
    of its own length: the fixed cost of a segment (only with ``segment_s``)."""

    def work_s(self, duration_s: float) -> float:
        """Seconds of video a render job of ``duration_s`` goes through (a segment re-reads ``overlap_s``)."""
        return duration_s + self.overlap_s if self.segment_s > 0 else duration_s

    def slots(self, pool: str) -> int:
        return max(1, self.pool_slots.get(pool, self.render_slots))


def pick_profile(profiles: Sequence[Profile], duration_s: float, start: float, deadline: float) -> Profile:
    """The best profile that finishes a clip started at ``start`` by ``deadline``, else the cheapest."""
    for profile in profiles:
        if start + profile.rtf * duration_s <= deadline:
            return profile
    return profiles[-1]


class Slots:
    """When each render slot of each pool is next free; placing a job takes the earliest slot of the
    pool of the profile chosen for it."""

    def __init__(self, budget: Budget, profiles: Sequence[Profile], now: float, busy: Iterable[tuple[str, float]]):
        """``busy``: the pool and the expected end of each running render."""
        self.profiles = list(profiles)
        self.free: dict[str, list[float]] = {profile.pool: [] for profile in self.profiles}
        for pool, end in busy:
            if pool in self.free:
                self.free[pool].append(max(now, end))
        for pool, ends in self.free.items():
            ends += [now] * max(0, budget.slots(pool) - len(ends))
            heapq.heapify(ends)

    def place(self, duration_s: float, deadline: float, best: bool = False) -> Profile:
        """The best profile whose pool's next free slot finishes the clip by ``deadline`` (the best one
        if ``best``), else the cheapest; the slot is then busy until that render ends."""
        chosen = self.profiles[0] if best else self.profiles[-1]
        if not best:
            for profile in self.profiles:
                if self.free[profile.pool][0] + profile.rtf * duration_s <= deadline:
                    chosen = profile
                    break
        ends = self.free[chosen.pool]
        heapq.heapreplace(ends, ends[0] + chosen.rtf * duration_s)
        return chosen
