"""The persona: the {name} placeholder, its validation, filling it, and which names a viewer may use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from reelfork.narrative.graph import validate
from reelfork.narrative.persona import InvalidName, check_name, fill, placeholder_problems, uses_name
from reelfork.narrative.story import Story, fill_scene

from tests.helpers.stories import choice, scene, story

SEED = Path(__file__).parents[2] / "narrative" / "stories" / "last-ferry.yaml"
PERSONA = {"character": "ann", "name": "Ann", "max_name": 20,
           "looks": [{"id": "red", "label": "Red", "look": "Ann in red.", "color": "#aa0000"},
                     {"id": "blue", "label": "Blue", "look": "Ann in blue."}]}


def with_persona(text: str, **extra: Any) -> dict[str, Any]:
    first = scene("a", choice("go", "b"))
    first["lines"] = [{"id": "l1", "speaker": "ann", "text": text}]
    return {**story(first, scene("b")), "persona": PERSONA, **extra}


def test_fill_replaces_the_placeholder_and_unescapes_braces() -> None:
    assert fill("{name}'s hand, {{literal}}", "Zoë") == "Zoë's hand, {literal}"
    assert fill("no placeholder", "Zoë") == "no placeholder"
    assert fill("{unknown} stays", "Zoë") == "{unknown} stays"
    assert uses_name("Hi {name}") and not uses_name("Hi {{name}}")


def test_unknown_placeholder_is_a_located_error() -> None:
    found = validate(Story.model_validate(with_persona("Hello {nmae}.")))
    assert [(p.where, p.severity) for p in found] == [("scenes[a].lines[l1].text", "error")]
    assert "{nmae}" in found[0].message and "{name}" in found[0].message


def test_placeholder_without_a_persona_is_an_error() -> None:
    data = with_persona("Hello {name}.")
    del data["persona"]
    found = validate(Story.model_validate(data))
    assert [p.where for p in found] == ["scenes[a].lines[l1].text"] and "persona" in found[0].message


def test_placeholder_in_titles_and_labels_is_checked_too() -> None:
    data = with_persona("Hello {name}.")
    data["scenes"][0]["title"] = "{name} {surname}"
    data["scenes"][0]["choices"][0]["label"] = "Follow {name}"
    found = validate(Story.model_validate(data))
    assert [p.where for p in found] == ["scenes[a].title"]
    assert placeholder_problems("{name} and {{x}}", has_persona=True) == []


def test_persona_character_must_exist() -> None:
    data = with_persona("Hello {name}.")
    data["persona"] = {**PERSONA, "character": "bob"}
    assert [p.where for p in validate(Story.model_validate(data))] == ["persona.character"]


def test_looks_replace_look_and_palette_of_the_persona_only() -> None:
    source = Story.model_validate(with_persona("Hello {name}."))
    red, blue = source.bible_for("red").character("ann"), source.bible_for("blue").character("ann")
    assert (red.look, red.color) == ("Ann in red.", "#aa0000")
    assert blue.look == "Ann in blue." and source.bible_for(None) == source.bible_for("red")
    with pytest.raises(KeyError):
        source.bible_for("green")


def test_fill_scene_fills_title_lines_and_labels() -> None:
    source = Story.model_validate(with_persona("Run, {name}!"))
    filled = fill_scene(source.scene("a").model_copy(update={"title": "{name} runs"}), "Zoë")
    assert (filled.title, filled.lines[0].text) == ("Zoë runs", "Run, Zoë!")
    assert filled.lines[0].id == "l1"


@pytest.mark.parametrize("name", ["Zoë", "Mary-Jane", "O'Neil", "D\u2019Arcy", "José María", "李小龙", "Ngũgĩ", "अनु"])
def test_names_in_any_script_are_allowed(name: str) -> None:
    assert check_name(name, 24) == name


def test_name_is_normalised() -> None:
    assert check_name("  Zoe\u0308   Smith ", 24) == "Zoë Smith"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x" * 500, "at most"),
        ("<script>alert(1)</script>", "letters, spaces"),
        ("Ann\u202eevil", "bidi"),
        ("Ann\u200fx", "bidi"),
        ("Ann\nBob", "control"),
        ("Ann\x00", "control"),
        ("R2D2", "letters, spaces"),
        ("   ", "at least one letter"),
        ("", "at least one letter"),
        ("-'-", "at least one letter"),
        ("Bobby Tables;", "letters, spaces"),
    ],
)
def test_bad_names_are_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        check_name(name, 24)


def test_name_length_bound_is_the_story_s() -> None:
    assert check_name("A" * 24, 24) == "A" * 24
    with pytest.raises(InvalidName, match="at most 24"):
        check_name("A" * 25, 24)


def test_seed_story_plays_mara_as_persona() -> None:
    seed = Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))
    assert seed.persona is not None and seed.persona.character == "mara" and seed.persona.name == "Mara"
    assert len(seed.persona.looks) >= 3
    assert not [p for p in validate(seed) if p.severity == "error"]
    texts = [line.text for s in seed.scenes for line in s.lines]
    assert sum(uses_name(text) for text in texts) >= 8
    assert not any("Mara" in text for text in texts), "the protagonist is named by the placeholder"
    assert len(seed.persona.slot_name()) <= seed.persona.max_name
    assert len(seed.persona.slot_name()) >= seed.persona.max_name - len(seed.persona.name)
