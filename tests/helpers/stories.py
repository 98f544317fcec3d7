"""Small story builders shared by the tests."""

from __future__ import annotations

from typing import Any

from reelfork.narrative.state import available_choices, begin, choose
from reelfork.narrative.story import Story

BIBLE = {
    "logline": "A test story.",
    "setting": "A room.",
    "tone": "Plain.",
    "characters": [{"id": "ann", "name": "Ann", "look": "Ann, plainly dressed."}],
}


def scene(scene_id: str, *choices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A scene dict; no choices makes it an ending."""
    return {
        "id": scene_id, "title": scene_id.title(), "place": "A room",
        "lines": [{"speaker": "ann", "text": f"In {scene_id}."}],
        "choices": list(choices), "ending": not choices, **extra,
    }


def choice(choice_id: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"id": choice_id, "label": choice_id.title(), "target": target, **extra}


def story(*scenes: dict[str, Any], variables: dict[str, Any] | None = None, start: str | None = None
          ) -> dict[str, Any]:
    return {"id": "test", "title": "Test", "bible": BIBLE, "start": start or scenes[0]["id"],
            "variables": variables or {}, "scenes": list(scenes)}


def play(source: Story, picks: list[str]) -> list[str]:
    """Scene titles along the path that takes the choices labelled ``picks`` in order.

    A lone ``Continue`` (a Yarn node's flow, or an if/else branch) is taken without a pick.
    Consecutive scenes with the same title (parts of one Yarn node) count once.
    """
    state = begin(source, 1)
    current = source.scene(state.current)
    titles = [current.title]
    remaining = list(picks)
    while not current.ending:
        offered = available_choices(source, state)
        labels = [c.label for c in offered]
        if remaining and remaining[0] in labels:
            taken = offered[labels.index(remaining.pop(0))]
        elif labels == ["Continue"]:
            taken = offered[0]
        else:
            raise AssertionError(f"in {current.id!r} wanted {remaining[:1]}, offered {labels}")
        assert taken.target is not None
        state = choose(state, current, taken.id, taken.target)
        current = source.scene(state.current)
        if current.title != titles[-1]:
            titles.append(current.title)
    assert not remaining, f"ended in {current.id!r} before taking {remaining}"
    return titles


FERRY_LINES = [
    "The ferry horn sounds twice across the black water.",
    "Nobody on this deck has spoken since the lights went out.",
    "I counted the passengers when we left the harbour, and now there is one more.",
    "Then count again, slowly, and tell me which face you do not know.",
    "The one by the railing, with the wet coat and the dry shoes.",
    "Dry shoes on a night like this mean someone carried him aboard.",
    "Or he never came from the harbour at all.",
    "Then we ask him, before the horn sounds a third time.",
]
"""Dialogue for long clips, spoken by Ann and Ben in turn (:func:`ferry_story`)."""


def ferry_story(story_id: str, title: str, *scenes: tuple[str, list[str], list[dict[str, str]]]) -> dict[str, Any]:
    """Two strangers on a night ferry: each scene an (id, lines, choices); a scene without choices is an ending."""
    bible = {
        "logline": "Two strangers count the passengers of a night ferry.",
        "setting": "A night ferry.",
        "tone": "Quiet suspense.",
        "characters": [
            {"id": "ann", "name": "Ann", "look": "Ann, a grey raincoat."},
            {"id": "ben", "name": "Ben", "look": "Ben, a dark sweater."},
        ],
    }
    return {
        "id": story_id, "title": title, "bible": bible, "start": scenes[0][0], "variables": {},
        "scenes": [
            {
                "id": scene_id, "title": scene_id.title(), "place": "The deck of a night ferry",
                "lines": [{"speaker": "ann" if n % 2 else "ben", "text": text} for n, text in enumerate(lines)],
                "choices": choices, "ending": not choices,
            }
            for scene_id, lines, choices in scenes
        ],
    }
