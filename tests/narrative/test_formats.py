"""Hostile story text: every exception a parser can raise comes back as a located StoryError, never escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from reelfork.narrative.formats import StoryError, load_story
from reelfork.server.cli import app
from typer.testing import CliRunner

SEED = Path(__file__).resolve().parents[2] / "narrative" / "stories" / "last-ferry.yaml"
HUGE = "9" * 5000
DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('{"id": ' + HUGE + "}", "story:1:8", "5000 digits"),
        ("title: x\nid: " + HUGE + "\n", "story:2:5", "5000 digits"),
        ('{"id": ' + DEEP + "}", "story", "nested too deeply"),
        ("id: " + DEEP + "\n", "story:1:", "nesting depth"),
        ("id: 2020-13-45\n", "story", "month"),
    ],
)
def test_hostile_text_is_a_located_error(text: str, where: str, message: str) -> None:
    with pytest.raises(StoryError) as raised:
        load_story(text)
    problem = raised.value.problems[0]
    assert problem.where.startswith(where)
    assert message in problem.message


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x85", "\u202e", "\u2066"])
def test_titles_and_names_refuse_control_and_bidi_characters(character: str) -> None:
    story = yaml.safe_load(SEED.read_text())
    story["title"] = f"The Last{character} Ferry"
    story["bible"]["characters"][0]["name"] = f"Ma{character}ra"
    with pytest.raises(StoryError) as raised:
        load_story(yaml.safe_dump(story))
    located = {p.where: p.message for p in raised.value.problems}
    assert f"U+{ord(character):04X}" in located["title"]
    assert f"U+{ord(character):04X}" in located["bible.characters[0].name"]


def test_lines_keep_newlines_but_not_nul() -> None:
    story = yaml.safe_load(SEED.read_text())
    story["scenes"][0]["lines"][0]["text"] = "Two\nlines"
    load_story(yaml.safe_dump(story))
    story["scenes"][0]["lines"][0]["text"] = "a\x00b"
    with pytest.raises(StoryError) as raised:
        load_story(yaml.safe_dump(story))
    assert any("U+0000" in p.message for p in raised.value.problems)


@pytest.mark.parametrize("text", ['{"id": ' + HUGE + "}", '{"id": ' + DEEP + "}"])
def test_validate_exits_1_with_a_message(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hostile.json"
    path.write_text(text)
    result = CliRunner().invoke(app, ["story", "validate", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error: hostile.json" in result.output
