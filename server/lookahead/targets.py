"""What a scheduler job is in the shared queue: the clip keys of a render per profile, or the write job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reelfork.server.lookahead.decisions import segment_keys
from reelfork.server.lookahead.segments import segment_lengths
from reelfork.server.queue.jobs import JobKind, render_kind
from reelfork.server.queue.payloads import JobPayload, WriteJob, render_job
from reelfork.server.store import StoryVersion

CLIP_ESTIMATE_S = 8.0
"""A clip's duration before it is rendered."""


@dataclass(frozen=True)
class Target:
    """What a scheduler job is in the shared queue: its key per render profile, and what it does."""

    keys: dict[str, str]
    """Render profile → clip key; for a write, ``""`` → the scene id."""
    story: StoryVersion
    scene: str
    write: WriteJob | None = None
    """The write job, for a scene still to write; else the job renders ``scene``'s clip."""
    node: str = ""
    """The scene's scheduler node."""
    duration_s: float = CLIP_ESTIMATE_S
    """The clip's length as the scheduler was told it (its segments, when clips stream in segments)."""
    upgrade: str = ""
    """For the re-render of a degraded clip: the best profile."""

    def job(
        self, profile: str, tiers: Mapping[str, str], through: int | None = None
    ) -> tuple[JobKind, str, JobPayload]:
        """The queue, key and payload of this job in ``profile`` (a write has none), up to segment ``through``."""
        if self.write is not None:
            return "write", self.write.scene, self.write
        key = self.keys.get(profile) or next(iter(self.keys.values()))
        return render_kind(tiers[profile]), key, render_job(self.story, self.scene, key, profile, through=through)

    def profile_of(self, key: str) -> str:
        """The profile this job renders clip ``key`` in."""
        return next(profile for profile, clip in self.keys.items() if clip == key)

    def segment_keys(self, segment_s: float) -> tuple[str, ...]:
        """The scheduler's keys of the clip's segments (of its upgrade, for an upgrade)."""
        return segment_keys(self.node, 0, len(segment_lengths(self.duration_s, segment_s)), self.upgrade)
