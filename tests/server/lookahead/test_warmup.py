"""The warm-up's order: scenes earlier versions' viewers entered come first, most entered first, then the rest
breadth-first from the start, all within the budget."""

from __future__ import annotations

from reelfork.narrative.story import Scene, Story
from reelfork.server.lookahead.warmup import warm_order

from tests.helpers.stories import choice, scene, story


def branching() -> Story:
    return Story.model_validate(story(
        scene("start", choice("left", "a"), choice("right", "b")),
        scene("a", choice("on", "a2")),
        scene("b", choice("on", "b2")),
        scene("a2"),
        scene("b2"),
    ))


def ids(order: list[Scene]) -> list[str]:
    return [s.id for s in order]


def test_without_analytics_the_order_is_breadth_first_from_the_start() -> None:
    assert ids(warm_order(branching(), 10, {})) == ["start", "a", "b", "a2", "b2"]
    assert ids(warm_order(branching(), 2, {})) == ["start", "a"]


def test_watched_scenes_come_first_most_entered_first() -> None:
    watched = {"b2": 3, "b": 7, "a2": 0, "gone": 50}  # a scene this version no longer has is ignored
    assert ids(warm_order(branching(), 10, watched)) == ["b", "b2", "start", "a", "a2"]
    # Within a small budget the watched branch wins over the one the breadth-first order would take.
    assert ids(warm_order(branching(), 2, watched)) == ["b", "b2"]


def test_ties_keep_the_breadth_first_order() -> None:
    assert ids(warm_order(branching(), 10, {"b2": 1, "a2": 1})) == ["a2", "b2", "start", "a", "b"]
