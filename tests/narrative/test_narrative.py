"""The story format, graph validation and viewer state: pure, no I/O."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from reelfork.narrative.formats import StoryError, load_story, parse_story
from reelfork.narrative.graph import bridge_to_ending, nearest_ending, validate
from reelfork.narrative.state import UnknownChoice, advance, find_choice, generated_scene_id, start
from reelfork.server.runtime import seed_story_files


def seed() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(seed_story_files()[0].read_text())
    return data


def scene(data: dict[str, Any], scene_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["scenes"] if s["id"] == scene_id)
    return found


def problems_of(data: dict[str, Any]) -> list[str]:
    try:
        _, warnings = load_story(json.dumps(data))
    except StoryError as exc:
        return [str(p) for p in exc.problems]
    return [str(w) for w in warnings]


def test_seed_story_meets_the_brief() -> None:
    story, warnings = load_story(seed_story_files()[0].read_bytes())
    assert warnings == []
    assert len(story.scenes) >= 12
    assert sum(1 for s in story.scenes if len(s.choices) >= 2) >= 3
    assert sum(1 for s in story.scenes if s.ending) >= 2
    assert any(c.open is not None for s in story.scenes for c in s.choices)
    assert {"name", "look", "voice"} <= set(story.bible.characters[0].model_dump())


def test_missing_target_is_located() -> None:
    data = seed()
    scene(data, "boarding")["choices"][0]["target"] = "nowhere"
    assert problems_of(data) == [
        "error: scenes[boarding].choices[next].target: target scene 'nowhere' does not exist"
    ]


def test_scene_that_cannot_reach_an_ending_is_an_error() -> None:
    data = seed()
    loop = copy.deepcopy(scene(data, "heiress"))
    loop["id"] = "loop"
    loop["choices"] = [{"id": "again", "label": "Again", "target": "loop"}]
    data["scenes"].append(loop)
    scene(data, "boarding")["choices"].append({"id": "trap", "label": "Into the loop", "target": "loop"})
    assert "error: scenes[loop]: no path from this scene reaches an ending or an open node" in problems_of(data)


def test_unreachable_scene_is_a_warning_not_an_error() -> None:
    data = seed()
    for key in ("episodes", "free_episodes"):  # with episodes, an unreachable scene is also in none: an error
        del data[key]
    orphan = copy.deepcopy(scene(data, "end-dawn"))
    orphan["id"] = "orphan"
    data["scenes"].append(orphan)
    assert problems_of(data) == ["warning: scenes[orphan]: unreachable from the start scene"]


def test_unknown_speaker_duplicate_ids_and_bad_fallback_are_all_reported() -> None:
    data = seed()
    scene(data, "boarding")["lines"][0]["speaker"] = "ghost"
    data["scenes"].append(copy.deepcopy(scene(data, "end-dawn")))
    blackout = scene(data, "blackout")
    open_choice = next(c for c in blackout["choices"] if "open" in c)
    open_choice["open"]["fallback"] = "missing"
    found = problems_of(data)
    assert any("lines[l1].speaker: unknown speaker 'ghost'" in p for p in found)
    assert any("scene id 'end-dawn' is used twice" in p for p in found)
    assert any(".open.fallback: fallback scene 'missing' does not exist" in p for p in found)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("id: x\ntitle: [unclosed\n", "story:3:"),
        ('{"id": "x",', "story:1:"),
        ("- a list\n- not a story\n", "story"),
    ],
)
def test_malformed_text_gives_a_located_error(text: str, where: str) -> None:
    with pytest.raises(StoryError) as caught:
        parse_story(text)
    assert caught.value.problems[0].where.startswith(where)


def test_schema_errors_name_the_field() -> None:
    data = seed()
    data["scenes"][0]["choices"][0].pop("target")
    with pytest.raises(StoryError) as caught:
        parse_story(json.dumps(data))
    assert caught.value.problems[0].where == "scenes[0].choices[0]"
    data = seed()
    data["scenes"][1]["lines"][0]["color"] = "red"
    with pytest.raises(StoryError) as caught:
        parse_story(json.dumps(data))
    assert caught.value.problems[0].where == "scenes[1].lines[0].color"


def test_state_advances_only_through_choices_and_generated_ids_are_content_addressed() -> None:
    story, _ = load_story(seed_story_files()[0].read_bytes())
    state = start(story.id, 1, story.start)
    first = story.scene(state.current)
    with pytest.raises(UnknownChoice, match="offers: next"):
        find_choice(first, "nope")
    moved = advance(state, "heiress")
    assert state.path == [story.start] and moved.path == [story.start, "heiress"]
    a = generated_scene_id(story.digest(), "blackout", "cabin")
    assert a == generated_scene_id(story.digest(), "blackout", "cabin")
    assert a != generated_scene_id(story.digest(), "blackout", "hold")
    deeper = advance(advance(moved, a), generated_scene_id(story.digest(), a, "c1"))
    assert deeper.generated_depth == 2 and moved.generated_depth == 0


def test_bridge_leads_to_the_nearest_ending() -> None:
    story, _ = load_story(seed_story_files()[0].read_bytes())
    assert nearest_ending(story, "ten-years") == "end-fog"
    bridge = bridge_to_ending(story, "g-0000", "ten-years")
    assert bridge.choices[0].target == "end-fog"
    assert validate(story) == []
