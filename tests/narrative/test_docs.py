"""docs/story-format.md: every example story in it is real, valid, and says what the code does.

Fenced blocks by info string:

- ```yaml / ```json: a complete story (top-level ``id`` and ``scenes``); it must load with no
  errors and no warnings. The YAML and JSON blocks sharing a story ``id`` must be the same story.
- ```yaml fragment / ```json fragment: part of a story or of an API answer; it must parse, and one
  made only of ``variables``, ``choices``, ``condition`` or ``effects`` must validate as those.
- ```yaml invalid NAME: a complete story that must fail; ```twee NAME / ```yarn NAME: an import
  that must succeed. The ```console block right after either lists, in order, the
  ``error:``/``warning:`` lines the CLI prints for it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter
from reelfork.narrative.formats import StoryError, StoryFormat, load_story
from reelfork.narrative.problems import Problem
from reelfork.narrative.story import Choice, Effect, Expr, Story, Variable

DOC = Path(__file__).resolve().parents[2] / "docs" / "story-format.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    lang: str
    modifiers: tuple[str, ...]
    body: str
    line: int

    @property
    def name(self) -> str:
        return f"{DOC.name}:{self.line}:{self.lang}"


def blocks() -> list[Block]:
    text = DOC.read_text(encoding="utf-8")
    found: list[Block] = []
    for match in FENCE.finditer(text):
        info = match.group(1).split()
        if info:
            found.append(Block(info[0], tuple(info[1:]), match.group(2), text.count("\n", 0, match.start()) + 1))
    return found


def parse(block: Block) -> Any:
    return json.loads(block.body) if block.lang == "json" else yaml.safe_load(block.body)


def is_story(data: Any) -> bool:
    return isinstance(data, dict) and "id" in data and "scenes" in data


def stories() -> list[Block]:
    return [b for b in blocks() if b.lang in {"yaml", "json"} and not b.modifiers]


def expected_after(block: Block) -> list[str]:
    """The problem lines of the ```console block that follows ``block``."""
    following = [b for b in blocks() if b.line > block.line]
    assert following and following[0].lang == "console", f"{block.name}: no ```console block follows it"
    return [line for line in following[0].body.splitlines() if line.startswith(("error: ", "warning: "))]


@pytest.mark.parametrize("block", stories(), ids=lambda b: b.name)
def test_every_story_block_is_a_valid_story(block: Block) -> None:
    assert is_story(parse(block)), f"{block.name}: not a whole story; tag it '{block.lang} fragment'"
    story, warnings = load_story(block.body, source=block.name)
    assert warnings == [], [str(w) for w in warnings]
    assert story.scenes


def test_yaml_and_json_minimal_story_are_the_same_story() -> None:
    by_id: dict[str, dict[str, list[Story]]] = defaultdict(lambda: defaultdict(list))
    for block in stories():
        story, _ = load_story(block.body, source=block.name)
        by_id[story.id][block.lang].append(story)
    pairs = {story_id: langs for story_id, langs in by_id.items() if "yaml" in langs and "json" in langs}
    assert "the-dock" in pairs, "the minimal story 'the-dock' needs a YAML and a JSON block"
    for langs in pairs.values():
        first = langs["yaml"][0]
        for other in [*langs["yaml"], *langs["json"]]:
            assert other == first
            assert other.digest() == first.digest()


FRAGMENT_KEYS: dict[str, TypeAdapter[Any]] = {
    "variables": TypeAdapter(dict[str, Variable]),
    "choices": TypeAdapter(list[Choice]),
    "condition": TypeAdapter(Expr),
    "effects": TypeAdapter(list[Effect]),
}


def test_fragments_parse_and_their_story_parts_are_well_formed() -> None:
    """Fragments parse; those made of variables, choices, a condition or effects validate as such."""
    fragments = [b for b in blocks() if b.lang in {"yaml", "json"} and "fragment" in b.modifiers]
    checked = 0
    for block in fragments:
        data = parse(block)
        if isinstance(data, dict) and data and set(data) <= set(FRAGMENT_KEYS):
            for key, value in data.items():
                FRAGMENT_KEYS[key].validate_python(value)
                checked += 1
    assert checked >= 5


def problem_lines(body: str, source: str, kind: StoryFormat) -> tuple[bool, list[str]]:
    """Whether loading failed, and the problems as the CLI prints them."""
    found: list[Problem]
    try:
        _, found = load_story(body, source=source, kind=kind)
        failed = False
    except StoryError as exc:
        found, failed = exc.problems, True
    return failed, [str(p) for p in found]


def test_invalid_example_prints_the_documented_messages() -> None:
    invalid = [b for b in blocks() if b.lang == "yaml" and b.modifiers[:1] == ("invalid",)]
    assert invalid
    for block in invalid:
        failed, printed = problem_lines(block.body, block.modifiers[1], "story")
        assert failed, f"{block.name} is documented as invalid but loads"
        assert printed == expected_after(block)


@pytest.mark.parametrize("lang", ["twee", "yarn"])
def test_import_examples_print_the_documented_warnings(lang: StoryFormat) -> None:
    examples = [b for b in blocks() if b.lang == lang]
    assert examples
    for block in examples:
        failed, printed = problem_lines(block.body, block.modifiers[0], lang)
        assert not failed, printed
        assert printed == expected_after(block)
