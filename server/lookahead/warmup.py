"""The warm-up's order: which authored scenes' clips a publish queues first, within its budget."""

from __future__ import annotations

from collections.abc import Mapping

from reelfork.narrative.story import Scene, Story
from reelfork.server.publishing import earliest_scenes

STEP_S = 0.001
"""Warm-up jobs are due this much apart, in this order: the queue runs the earliest due first."""


def warm_order(story: Story, budget: int, watched: Mapping[str, int]) -> list[Scene]:
    """Up to ``budget`` scenes of ``story``: those viewers of earlier versions entered, most entered first, then
    the rest breadth-first from the start (what a new story's viewers reach first)."""
    reach = earliest_scenes(story, len(story.scenes))
    rank = {scene.id: index for index, scene in enumerate(reach)}
    seen = sorted((s for s in reach if watched.get(s.id, 0) > 0), key=lambda s: (-watched[s.id], rank[s.id]))
    chosen = {scene.id for scene in seen}
    return (seen + [scene for scene in reach if scene.id not in chosen])[:budget]
