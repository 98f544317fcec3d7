"""What the scheduler hands its shell: queue changes (:data:`Decision`), a job to run, and the content key of a job."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from reelfork.server.lookahead.wants import WorkKind


@dataclass(frozen=True)
class Enqueue:
    key: str
    kind: WorkKind
    node: str
    clip: int
    """Index of the clip within the scene; 0 for a write."""
    duration_s: float
    score: float
    """Lower is sooner; absolute clock seconds."""
    profile: str
    """Render profile name; empty for a write."""
    deadline: float
    segment: int = 0
    """Index of the segment within the clip, when clips stream in segments (``Budget.segment_s``); the
    job renders that segment, conditioned on the one before (stored by then), and ``duration_s`` is its length."""


@dataclass(frozen=True)
class Reprioritise:
    key: str
    score: float
    profile: str
    deadline: float


@dataclass(frozen=True)
class Cancel:
    key: str


Decision = Enqueue | Reprioritise | Cancel


@dataclass(frozen=True)
class Job:
    key: str
    kind: WorkKind
    node: str
    clip: int
    duration_s: float
    profile: str
    deadline: float
    score: float
    segment: int = 0


def job_key(kind: WorkKind, node: str, clip: int = 0, upgrade: str = "", segment: int | None = None) -> str:
    """The content key of a job: the node is already content-addressed; the profile is chosen late, so
    it is part of the key only for ``upgrade``, the re-render of a degraded clip in that profile. With
    ``segment``, the key of that segment of the clip (clips streamed in segments)."""
    if kind == "write":
        return f"write:{node}"
    unit = f"{clip}" if segment is None else f"{clip}.{segment}"
    return f"render:{node}#{unit}@{upgrade}" if upgrade else f"render:{node}#{unit}"


@lru_cache(maxsize=65536)
def segment_keys(node: str, clip: int, count: int, upgrade: str = "") -> tuple[str, ...]:
    """The keys of a clip's ``count`` segments (of its upgrade to the ``upgrade`` profile, if given)."""
    return tuple(job_key("render", node, clip, upgrade, segment) for segment in range(count))
