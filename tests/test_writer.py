"""The embedded scene writer, against real inference with SmolLM2-135M (2 threads, a few seconds per scene)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from generation import checks, prompts, schema
from generation.grammar import gbnf
from generation.llama import LlamaCppWriter
from generation.report import WriteFailed
from generation.schema import Draft, DraftChoice, DraftLine
from generation.writing import WriteError, WriteRequest
from narrative.story import NARRATOR, Scene, Story

STORY = Story.model_validate(
    {
        "id": "night-shift",
        "title": "Night Shift",
        "bible": {
            "logline": "A night nurse discovers that the charming new doctor is not who he says he is.",
            "setting": "St. Agnes Hospital in a rainy city at night: long corridors, a quiet ward, a rooftop.",
            "tone": "tense romantic thriller",
            "style_rules": ["Short spoken lines.", "Every scene ends on a cliffhanger."],
            "characters": [
                {"id": "mia", "name": "Mia", "look": "Young nurse, dark ponytail, blue scrubs, tired eyes."},
                {"id": "adrian", "name": "Dr. Adrian Cole", "look": "Tall man, white coat, silver watch."},
            ],
        },
        "start": "s1",
        "scenes": [
            {
                "id": "s1",
                "title": "The New Doctor",
                "place": "hospital corridor",
                "lines": [
                    {"id": "l1", "speaker": "narrator", "text": "Midnight. A stranger in a white coat walks in."},
                    {"id": "l2", "speaker": "adrian", "text": "I'm Dr. Cole. I was told you need help tonight."},
                    {"id": "l3", "speaker": "mia", "text": "Nobody told me about a new doctor."},
                    {"id": "l4", "speaker": "adrian", "text": "Then let's keep it our little secret."},
                ],
                "choices": [
                    {
                        "id": "c1",
                        "label": "Check his badge",
                        "open": {"hint": "Mia checks his badge: the photo belongs to someone else."},
                    },
                    {
                        "id": "c2",
                        "label": "Follow him to the ward",
                        "open": {"hint": "Mia follows him and sees him open the locked drug cabinet."},
                    },
                ],
            },
            {
                "id": "s2",
                "title": "Rooftop",
                "place": "hospital rooftop",
                "lines": [{"id": "l1", "speaker": "mia", "text": "It's over."}],
                "ending": True,
            },
        ],
    }
)
PARENT = STORY.scene("s1")


def request(choice_id: str = "c1", *, must_end: bool = False, seed: int = 1) -> WriteRequest:
    return WriteRequest(
        story=STORY,
        path=[PARENT],
        choice=PARENT.choice(choice_id),
        scene_id="g-test",
        must_end=must_end,
        seed=seed,
    )


@pytest.fixture(scope="module")
def writer() -> LlamaCppWriter:
    return LlamaCppWriter(n_threads=2, max_attempts=4)


def assert_valid(scene: Scene, must_end: bool) -> None:
    assert scene.id == "g-test"
    assert [line.id for line in scene.lines] == [f"l{i}" for i in range(1, len(scene.lines) + 1)]
    assert {line.speaker for line in scene.lines} <= {"mia", "adrian", NARRATOR}
    assert scene.place in {"hospital corridor", "hospital rooftop"}
    assert scene.mood == PARENT.mood
    if must_end:
        assert scene.ending and scene.choices == []
    else:
        assert not scene.ending and 2 <= len(scene.choices) <= 3
        assert [c.id for c in scene.choices] == [f"c{i}" for i in range(1, len(scene.choices) + 1)]
        for choice in scene.choices:
            assert choice.open is not None and choice.open.hint == choice.label and choice.target is None


def as_draft(scene: Scene) -> Draft:
    return Draft(
        title=scene.title,
        place=scene.place,
        lines=[DraftLine(speaker=line.speaker, text=line.text) for line in scene.lines],
        choices=[DraftChoice(label=choice.label) for choice in scene.choices],
        ending=scene.ending,
    )


# Real inference


def test_write_returns_a_checked_open_scene(writer: LlamaCppWriter) -> None:
    written = writer.write_reported(request("c1"))
    assert_valid(written.scene, must_end=False)
    assert checks.problems(as_draft(written.scene), STORY, PARENT, False, checks.WordListPolicy()) == []
    report = written.report
    assert report is writer.last_report and report.accepted
    assert 1 <= len(report.attempts) <= 4
    assert report.prompt_tokens > 100 and report.completion_tokens > 20
    assert report.provenance.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert report.provenance.prompt_sha256 == prompts.digest(prompts.build_messages(request("c1")))
    assert report.provenance.seed == 1 + len(report.attempts) - 1
    json.dumps(report.to_dict())


def test_must_end_yields_an_ending_without_choices(writer: LlamaCppWriter) -> None:
    scene = writer.write(request("c2", must_end=True))
    assert_valid(scene, must_end=True)


def test_sibling_prompts_share_most_tokens(writer: LlamaCppWriter) -> None:
    first = writer.tokenize(prompts.chatml(prompts.build_messages(request("c1"))))
    second = writer.tokenize(prompts.chatml(prompts.build_messages(request("c2"))))
    shared = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        shared += 1
    assert shared / max(len(first), len(second)) >= 0.8


class RejectEverythingPolicy:
    """Test fake for the failure path: a content policy that refuses every text."""

    def check(self, texts: Sequence[str]) -> list[str]:
        return ["test fake: rejects everything"]


def test_write_error_after_max_attempts() -> None:
    failing = LlamaCppWriter(n_threads=2, max_attempts=2, policy=RejectEverythingPolicy())
    with pytest.raises(WriteError) as caught:
        failing.write(request("c2", must_end=True, seed=5))
    assert isinstance(caught.value, WriteFailed)
    report = caught.value.report
    assert not report.accepted
    assert [a.seed for a in report.attempts] == [5, 6]
    # The policy is consulted on every attempt that parsed; an attempt cut at max_tokens fails before it.
    assert all(a.problems for a in report.attempts)
    assert any("test fake: rejects everything" in a.problems for a in report.attempts), report.problems
    assert "attempt 2" in str(caught.value)


# Checks on hand-written candidates


def draft(**changes: Any) -> Draft:
    base: dict[str, Any] = {
        "title": "The Fake Badge",
        "place": "hospital corridor",
        "lines": [
            {"speaker": "mia", "text": "This photo is not you."},
            {"speaker": "adrian", "text": "You should not have looked."},
        ],
        "choices": [{"label": "Run to security"}, {"label": "Take the badge"}],
        "ending": False,
    }
    base.update(changes)
    return Draft.model_validate(base)


def found(candidate: Draft, must_end: bool = False) -> list[str]:
    return checks.problems(candidate, STORY, PARENT, must_end, checks.WordListPolicy())


def test_a_good_candidate_has_no_problems() -> None:
    assert found(draft()) == []


def test_unknown_speaker() -> None:
    bad = draft(lines=[{"speaker": "28", "text": "Who are you?"}, {"speaker": "mia", "text": "Leave now."}])
    assert found(bad) == ["lines[0].speaker '28' is not a bible character or 'narrator'"]


def test_duplicate_labels_ignore_case_and_spaces() -> None:
    bad = draft(choices=[{"label": "Run to security"}, {"label": "  run to   SECURITY "}])
    assert found(bad) == ["choices[1].label duplicates choices[0].label: '  run to   SECURITY '"]


def test_empty_label() -> None:
    assert found(draft(choices=[{"label": "   "}, {"label": "Take the badge"}])) == ["choices[0].label is empty"]


def test_line_repeated_from_the_parent_scene() -> None:
    repeated = {"speaker": "mia", "text": "nobody told me about a NEW doctor"}
    bad = draft(lines=[repeated, {"speaker": "adrian", "text": "Run."}])
    assert found(bad) == ["lines[0].text repeats a line of the previous scene: 'nobody told me about a NEW doctor'"]


def test_identical_lines() -> None:
    same = {"speaker": "mia", "text": "Help!"}
    assert found(draft(lines=[same, same, same])) == ["all lines are identical"]


def test_label_identical_to_a_line() -> None:
    bad = draft(choices=[{"label": "You should not have looked"}, {"label": "Take the badge"}])
    assert found(bad) == ["choices[0].label is identical to a line: 'You should not have looked'"]


def test_empty_title() -> None:
    assert found(draft(title="  ")) == ["title is empty"]


def test_speaker_tag_inside_text() -> None:
    bad = draft(lines=[{"speaker": "mia", "text": "Adrian: I lied."}, {"speaker": "mia", "text": "Why?"}])
    assert found(bad) == ["lines[0].text starts with a speaker tag 'adrian': 'Adrian: I lied.'"]


def test_ending_inconsistent_with_choices() -> None:
    assert found(draft(ending=True)) == [
        "ending is true but the scene has 2 choice(s)",
        "the scene must not be an ending yet but ending is true",
    ]
    assert found(draft(choices=[]), must_end=True) == [
        "ending is false but the scene has 0 choice(s); it needs at least 2",
        "the scene must be an ending but ending is false",
    ]
    assert found(draft(choices=[], ending=True), must_end=True) == []


def test_policy_word_is_a_reason() -> None:
    line = {"speaker": "mia", "text": "This is PORN, not medicine."}
    bad = draft(lines=[line, {"speaker": "adrian", "text": "Quiet."}])
    assert found(bad) == ["content policy: text 1 contains blocked word(s) porn"]


def test_word_list_policy_matches_whole_words_only() -> None:
    policy = checks.WordListPolicy(["cab"])
    assert policy.check(["Call a cab", "the cabinet"]) == ["content policy: text 0 contains blocked word(s) cab"]
    assert checks.WordListPolicy([]).check(["anything"]) == []


# Schema, grammar and prompt, without the model


def strings(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = [node] if node.get("type") == "string" else []
        return own + [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


@pytest.mark.parametrize("must_end", [False, True])
def test_schema_bounds_every_string(must_end: bool) -> None:
    tree = schema.scene_schema(STORY, must_end)
    for node in strings(tree):
        assert "maxLength" in node or "enum" in node, node
    line = tree["properties"]["lines"]["items"]["properties"]
    assert line["speaker"]["enum"] == ["mia", "adrian", "narrator"]
    assert tree["properties"]["ending"]["const"] is must_end
    assert tree["properties"]["choices"]["maxItems"] == (0 if must_end else 3)


def test_grammar_keeps_control_characters_out_of_strings() -> None:
    text = gbnf(schema.scene_schema(STORY, False))
    char_rules = [line for line in text.splitlines() if line.startswith("char ::= ")]
    assert char_rules == [line for line in char_rules if r"\x00-\x1F" in line and r"\x7F" in line]
    assert char_rules


def test_prompt_is_deterministic_and_choice_comes_last() -> None:
    first = prompts.build_messages(request("c1"))
    assert first == prompts.build_messages(request("c1"))
    user = first[-1]["content"]
    assert user.index("Previous scene") < user.index("Check his badge") < user.index("Write the next scene")
    assert "Dr. Adrian Cole" in first[0]["content"]
