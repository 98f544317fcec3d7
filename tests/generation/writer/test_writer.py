"""The embedded scene writer, against real inference with SmolLM2-135M (2 threads, a few seconds per scene)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from reelfork.generation.writer import checks, prompts, schema
from reelfork.generation.writer.attempts import Completion, judge
from reelfork.generation.writer.grammar import gbnf, grammar
from reelfork.generation.writer.llama import LlamaCppWriter
from reelfork.generation.writer.report import WriteFailed
from reelfork.generation.writer.request import WriteError
from reelfork.generation.writer.schema import Draft, DraftChoice, DraftLine
from reelfork.generation.writer.tidy import tidy
from reelfork.narrative.formats import load_story
from reelfork.narrative.persona import Persona
from reelfork.narrative.story import NARRATOR, Scene, Story

from tests.helpers.writer import PARENT, STORY, assert_valid, request

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def writer() -> LlamaCppWriter:
    return LlamaCppWriter(n_threads=2, max_attempts=4)


def as_draft(scene: Scene) -> Draft:
    return Draft(
        title=scene.title,
        place=scene.place,
        lines=[DraftLine(speaker=line.speaker, text=line.text) for line in scene.lines],
        choices=[DraftChoice(label=choice.label) for choice in scene.choices],
        ending=scene.ending,
    )


# Real inference


@pytest.mark.slow
def test_write_returns_a_checked_open_scene(writer: LlamaCppWriter) -> None:
    written = writer.write_reported(request("c1"))
    assert_valid(written.scene, must_end=False)
    assert checks.problems(as_draft(written.scene), STORY, PARENT, False, checks.WordListPolicy()) == []
    assert 1 <= len(written.scene.title.split()) <= schema.TITLE_WORDS
    report = written.report
    assert report is writer.last_report and report.accepted
    assert 1 <= len(report.attempts) <= 4
    assert report.prompt_tokens > 100 and report.completion_tokens > 20
    assert report.provenance.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert report.provenance.prompt_sha256 == prompts.prompt_digest(prompts.build_messages(request("c1")))
    assert report.provenance.seed == 1 + len(report.attempts) - 1
    json.dumps(report.to_dict())


@pytest.mark.slow
def test_must_end_yields_an_ending_without_choices(writer: LlamaCppWriter) -> None:
    scene = writer.write(request("c2", must_end=True))
    assert_valid(scene, must_end=True)


def test_the_longest_scene_the_schema_allows_fits_max_tokens(writer: LlamaCppWriter) -> None:
    words = ["the", "ferry", "horn", "sounds", "twice", "and", "nobody", "on", "deck", "moves,", "because", "they"]

    def text(limit: int) -> str:
        out = words[0]
        for word in words[1:] * 9:
            if len(out) + 1 + len(word) > limit:
                break
            out += " " + word
        return out

    longest = {
        "title": "Nobody Moves On Deck Tonight",
        "place": max(schema.places(STORY) or ["x"], key=len),
        "lines": [{"speaker": "adrian", "text": text(schema.TEXT_MAX - 1)}] * schema.LINES_MAX,
        "choices": [{"label": text(55).capitalize()}] * schema.CHOICES_MAX,
        "ending": False,
    }
    # Spaces around the JSON punctuation, as the model writes it.
    answer = json.dumps(longest, separators=(" , ", " : "))
    assert len(writer.tokenize(answer)) < schema.MAX_TOKENS
    assert writer.max_tokens == schema.MAX_TOKENS


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


@pytest.mark.slow
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


def test_a_variable_named_in_text_is_a_contradiction() -> None:
    tracked = Story.model_validate({**STORY.model_dump(mode="json"), "variables": {"gold": {"type": "int"}}})
    lines = [
        {"speaker": "mia", "text": "You still owe me $gold coins."},
        {"speaker": "adrian", "text": "And you owe me $silver, {var: trust} and {$gold}."},
        {"speaker": "narrator", "text": "The badge cost $5 and a favour."},
    ]
    assert checks.variable_problems(draft(lines=lines), tracked) == [
        "lines[0].text prints the story variable 'gold' (int): written text is not interpolated, and viewers "
        "who reach this scene may hold different values: 'You still owe me $gold coins.'",
        "lines[1].text refers to a variable 'silver' the story does not declare: "
        "'And you owe me $silver, {var: trust} and {$gold}.'",
        "lines[1].text refers to a variable 'trust' the story does not declare: "
        "'And you owe me $silver, {var: trust} and {$gold}.'",
        "lines[1].text prints the story variable 'gold' (int): written text is not interpolated, and viewers "
        "who reach this scene may hold different values: 'And you owe me $silver, {var: trust} and {$gold}.'",
    ]
    assert len(checks.problems(draft(lines=lines), tracked, PARENT, False)) == 4
    assert checks.variable_problems(draft(), tracked) == []


def test_policy_word_is_a_reason() -> None:
    line = {"speaker": "mia", "text": "This is PORN, not medicine."}
    bad = draft(lines=[line, {"speaker": "adrian", "text": "Quiet."}])
    assert found(bad) == ["content policy: text 1 contains blocked word(s) porn"]


def test_word_list_policy_matches_whole_words_only() -> None:
    policy = checks.WordListPolicy(["cab"])
    assert policy.check(["Call a cab", "the cabinet"]) == ["content policy: text 0 contains blocked word(s) cab"]
    assert checks.WordListPolicy([]).check(["anything"]) == []


# Repairs before the checks


def tidied(candidate: Draft) -> Draft:
    return tidy(candidate, STORY, PARENT)


def test_a_cut_title_is_trimmed_to_a_whole_phrase() -> None:
    cut = ("The Heiress. Celeste Harrow. The last ferry to Harrow Island and the night that " * 2)[: schema.TITLE_MAX]
    assert found(draft(title=cut)) == [f"title is cut off at {schema.TITLE_MAX} characters: {cut!r}"]
    assert tidied(draft(title=cut)).title == "The Heiress"
    sentence = ("The last ferry to Harrow Island and the night that the sea took her sister " * 2)[: schema.TITLE_MAX]
    assert tidied(draft(title=sentence)).title == "The last ferry to Harrow Island and the night that the sea took her"
    # At the English pattern's word limit: the words a title cannot end on go.
    assert tidied(draft(title="A last farewell to the")).title == "A last farewell"
    assert tidied(draft(title="Mara Finds The Red Coat.")).title == "Mara Finds The Red Coat"
    assert tidied(draft(title="The Fake Badge")).title == "The Fake Badge"
    # Without the English pattern, only the length limit cuts a title.
    german = Story.model_validate({**STORY.model_dump(mode="json"), "language": "de"})
    assert tidy(draft(title="Das Ende. Und dann kam er nach Hause"), german, PARENT).title == (
        "Das Ende. Und dann kam er nach Hause"
    )
    # Nothing whole to keep: the checks still reject it.
    unbroken = "x" * schema.TITLE_MAX
    assert found(tidied(draft(title=unbroken))) == [f"title is cut off at {schema.TITLE_MAX} characters: {unbroken!r}"]


def test_repeated_empty_and_runaway_lines_are_dropped_when_enough_remain() -> None:
    runaway = "and then " * 20
    lines = [
        {"speaker": "narrator", "text": "Midnight. A stranger in a white coat walks in."},
        {"speaker": "mia", "text": "This photo is not you."},
        {"speaker": "adrian", "text": "You should not have looked."},
        {"speaker": "mia", "text": "this photo is NOT you"},
        {"speaker": "narrator", "text": "..."},
        {"speaker": "adrian", "text": runaway[: schema.TEXT_MAX]},
    ]
    repaired = tidied(draft(lines=lines))
    assert [line.text for line in repaired.lines] == ["This photo is not you.", "You should not have looked."]
    assert found(repaired) == []


def test_lines_are_kept_when_too_few_would_remain() -> None:
    same = {"speaker": "mia", "text": "Help!"}
    assert found(tidied(draft(lines=[same, same, same]))) == ["all lines are identical"]
    repeated = [{"speaker": "mia", "text": "Nobody told me about a new doctor."}, {"speaker": "adrian", "text": "Run."}]
    assert found(tidied(draft(lines=repeated))) == [
        "lines[0].text repeats a line of the previous scene: 'Nobody told me about a new doctor.'"
    ]


def completion(text: str, finish_reason: str = "stop") -> Completion:
    return Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=1,
        completion_tokens=1,
        prompt_evaluated=1,
        generation_seconds=0.1,
    )


def test_judge_repairs_before_it_checks() -> None:
    answer = draft(
        title="You cut the engines on purpose. Your hand is still on the switch now",
        lines=[
            {"speaker": "mia", "text": "Mia: This photo is not you."},
            {"speaker": "adrian", "text": "You should not have looked."},
            {"speaker": "mia", "text": "This photo is not you!"},
        ],
    ).model_dump_json()
    scene, problems = judge(completion(answer), request("c1"), PARENT, schema.MAX_TOKENS, checks.WordListPolicy())
    assert problems == []
    assert scene is not None and scene.title == "You cut the engines on purpose"
    assert [line.text for line in scene.lines] == ["This photo is not you.", "You should not have looked."]
    cut, problems = judge(completion(answer[:50], "length"), request("c1"), PARENT, 512, checks.WordListPolicy())
    assert cut is None and problems == ["output cut at max_tokens=512 before the JSON was complete"]


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


def test_english_titles_are_a_few_plain_words() -> None:
    title = schema.scene_schema(STORY, False)["properties"]["title"]
    assert title["pattern"] == schema.TITLE_PATTERN
    pattern = re.compile(schema.TITLE_PATTERN)
    assert pattern.match("The Captain's Lie") and pattern.match("Dawn") and pattern.match("Who Is She?")
    assert not pattern.match("The Heiress. Celeste Harrow") and not pattern.match("One two three four five six")
    longest = "Abcdefghijklm" + " abcdefghijklm" * (schema.TITLE_WORDS - 1) + "!"
    assert pattern.match(longest) and len(longest) < schema.TITLE_MAX
    grammar(schema.scene_schema(STORY, False))  # llama.cpp parses it
    other = Story.model_validate({**STORY.model_dump(mode="json"), "language": "de"})
    assert "pattern" not in schema.scene_schema(other, False)["properties"]["title"]


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


def test_a_scene_that_reads_out_the_prompt_is_rejected() -> None:
    echoed = Draft(
        title="The Dock",
        place=PARENT.place,
        lines=[
            DraftLine(speaker=NARRATOR, text="This is the first scene of a short interactive drama, as JSON."),
            DraftLine(speaker=NARRATOR, text="The fog rolls in over the water."),
        ],
        choices=[],
        ending=True,
    )
    problems = checks.echo_problems(echoed, prompts.boilerplate(request(must_end=True)))
    assert problems == ["lines[0].text reads out the prompt's instructions: "
                        "'This is the first scene of a short interactive drama, as JSON.'"]
    plain = echoed.model_copy(update={"lines": echoed.lines[1:]})
    assert checks.echo_problems(plain, prompts.boilerplate(request(must_end=True))) == []


def test_a_long_sentence_cut_at_the_limit_ends_at_its_last_clause() -> None:
    long = ("I saw him at the dock in the rain last night, carrying the brass key in his left hand, and he "
            "looked straight at me as if he knew exactly who I was and what I had done")[: schema.TEXT_MAX]
    lines = [{"speaker": "mia", "text": long}, {"speaker": "adrian", "text": "You should not have looked."}]
    repaired = tidied(draft(lines=lines))
    assert repaired.lines[0].text == long[: long.index(", and he")] + "."
    assert found(repaired) == []


def test_a_line_that_fills_the_limit_loses_its_last_sentence() -> None:
    first = "She gave her sister a kiss on the cheek and said that she would never be back home again."
    full = (first + " She was very sad about all of this, more than anyone ever was")[: schema.TEXT_MAX - 1] + "."
    assert len(full) == schema.TEXT_MAX
    lines = [{"speaker": "mia", "text": full}, {"speaker": "adrian", "text": "You should not have looked."}]
    repaired = tidied(draft(lines=lines))
    assert repaired.lines[0].text == full[: full.index(" She was")]
    assert found(repaired) == []


def test_the_content_policy_word_list_is_configurable_and_rejections_are_counted(tmp_path: Any) -> None:
    from pydantic import ValidationError
    from reelfork.server.components import make_writer, writer_options
    from reelfork.server.metrics import REGISTRY
    from reelfork.server.settings import Settings
    from reelfork.server.worker import count_rejections

    words = tmp_path / "blocked.txt"
    words.write_text("ferry  # the seed story's word, to see it work\n\n  lighthouse keeper\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path, writer_blocked_words=words)
    writer = make_writer(writer_options(settings))
    assert writer.policy.check(["The Ferry leaves.", "Ask the lighthouse keeper.", "Fine."]) == [
        "content policy: text 0 contains blocked word(s) ferry",
        "content policy: text 1 contains blocked word(s) lighthouse keeper",
    ]
    with pytest.raises(ValidationError, match="writer_blocked_words"):
        Settings(data_dir=tmp_path, writer_blocked_words=tmp_path / "missing.txt")

    before = REGISTRY.get_sample_value("reelfork_content_rejections_total") or 0.0
    count_rejections("g-x", ["attempt 1: content policy: text 0 contains blocked word(s) ferry", "attempt 2: other"])
    assert REGISTRY.get_sample_value("reelfork_content_rejections_total") == before + 1


def test_a_persona_s_default_name_spelled_out_is_a_reason() -> None:
    played = STORY.model_copy(update={"persona": Persona(character="mia", name="Mia")})
    named = draft(lines=[{"speaker": "adrian", "text": "Mia, you should not have looked."},
                         {"speaker": "mia", "text": "Give me the badge, {name}."}])
    assert checks.problems(named, played, PARENT, False) == [
        "lines[0].text spells out the protagonist's name; write {name} so every viewer sees theirs",
    ]
    wrong = draft(lines=[{"speaker": "adrian", "text": "{name}, you should not have looked."},
                         {"speaker": "mia", "text": "Who is {nmae}?"}])
    assert [p.split(":")[0] for p in checks.problems(wrong, played, PARENT, False)] == ["lines[1].text"]
    # Without a persona, the placeholder means nothing: a scene that writes it is refused too.
    assert checks.problems(wrong, STORY, PARENT, False)[0].startswith("lines[0].text: {name} needs a 'persona'")


def test_the_writer_is_told_to_write_the_placeholder() -> None:
    played = STORY.model_copy(update={"persona": Persona(character="mia", name="Mia")})
    system = prompts.rules(played) + "\n" + prompts.bible(played)
    assert "Write {name} wherever a line names mia" in system
    assert "- mia: {name}." in system and "Mia" not in system.replace("Mia,", "")
    assert "{name}" not in prompts.rules(STORY) + prompts.bible(STORY)
# Held examples: written scenes served on the seed story that were valid JSON but not a scene.

FERRY = load_story((ROOT / "narrative" / "stories" / "last-ferry.yaml").read_bytes(), source="last-ferry.yaml")[0]


def ferry_found(candidate: Draft) -> list[str]:
    return checks.problems(candidate, FERRY, FERRY.scene("heiress"), False, checks.WordListPolicy())


def ferry_draft(**changes: Any) -> Draft:
    lines = [{"speaker": "mara", "text": "Someone cut the lights."}, {"speaker": "jonah", "text": "Stay here."}]
    return draft(**{"lines": lines, **changes})


def test_the_held_candidate_base_passes_on_the_ferry() -> None:
    assert ferry_found(ferry_draft()) == []


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [("{{story}}", "{{"), ("She said {story} again.", "{story}"), ("Wait }} there", "}}"), ("{ title }", "{ title }")],
)
def test_template_placeholders_are_rejected(text: str, placeholder: str) -> None:
    bad = draft(lines=[{"speaker": "mara", "text": text}, {"speaker": "narrator", "text": "Rain."}])
    assert ferry_found(bad) == [f"lines[0].text: a template placeholder {placeholder!r} is left in the text: {text!r}"]


def test_the_allowed_name_placeholder_passes() -> None:
    assert ferry_found(draft(lines=[{"speaker": "mara", "text": "Welcome aboard, {name}."}])) == []


@pytest.mark.parametrize("text", ["Mara Vance", "The Heiress", "mara.", "Last Ferry"])
def test_a_line_that_is_only_a_name_or_a_title_is_rejected(text: str) -> None:
    bad = draft(lines=[{"speaker": "mara", "text": text}, {"speaker": "narrator", "text": "Rain."}])
    assert ferry_found(bad) == [f"lines[0].text is only a name or a title from the story: {text!r}"]


def test_a_label_that_is_only_a_name_is_rejected() -> None:
    bad = ferry_draft(choices=[{"label": "Celeste Harrow"}, {"label": "Take the badge"}])
    assert ferry_found(bad) == ["choices[0].label is only a name or a title from the story: 'Celeste Harrow'"]


def test_words_run_together_are_rejected() -> None:
    bad = ferry_draft(choices=[{"label": "Alifeboat lowering into black water"}, {"label": "Take the badge"}])
    assert ferry_found(bad) == [
        "choices[0].label runs two words together: 'Alifeboat' (a lifeboat?): 'Alifeboat lowering into black water'"
    ]
    assert checks.fused("lifeboat", set()) is None and checks.fused("Harrowgate", {"harrowgate"}) is None
    assert checks.fused("texted", set()) is None  # an inflection, not "tex" + "ted"
    assert checks.fused("Theheiress", set()) == ("the", "heiress")


def test_a_title_copied_from_another_scene_is_rejected() -> None:
    assert ferry_found(ferry_draft(title="The Last Ferry")) == [
        "title copies the title of the story or one of its scenes: 'The Last Ferry'"
    ]
    assert ferry_found(ferry_draft(title="Dead in the water!")) == [
        "title copies the title of the story or one of its scenes: 'Dead in the water!'"
    ]


def test_the_protagonist_s_default_name_becomes_the_placeholder_and_a_bare_name_is_still_refused() -> None:
    written = ferry_draft(
        title="Mara Alone",
        lines=[{"speaker": "mara", "text": "Mara's locket is gone."}, {"speaker": "jonah", "text": "Marathon night."}],
        choices=[{"label": "Tell Mara the truth"}, {"label": "Take the badge"}],
    )
    repaired = tidy(written, FERRY, FERRY.scene("heiress"))
    assert repaired.title == "{name} Alone"
    assert [line.text for line in repaired.lines] == ["{name}'s locket is gone.", "Marathon night."]
    assert repaired.choices[0].label == "Tell {name} the truth"
    assert ferry_found(repaired) == []
    only_a_name = [{"speaker": "mara", "text": "Mara Vance"}, {"speaker": "narrator", "text": "Rain."}]
    bare = tidy(ferry_draft(lines=only_a_name), FERRY, FERRY.scene("heiress"))
    assert ferry_found(bare) == ["lines[0].text is only a name or a title from the story: '{name} Vance'"]


def test_a_line_or_label_that_is_only_a_name_is_dropped_when_enough_remain() -> None:
    lines = [{"speaker": "mara", "text": "Someone cut the lights."}, {"speaker": "jonah", "text": "jonah"},
             {"speaker": "jonah", "text": "Stay here."}]
    choices = [{"label": "Lily Vance"}, {"label": "Take the badge"}, {"label": "Run for the stairs"}]
    repaired = tidy(ferry_draft(lines=lines, choices=choices), FERRY, FERRY.scene("heiress"))
    assert [line.text for line in repaired.lines] == ["Someone cut the lights.", "Stay here."]
    assert [choice.label for choice in repaired.choices] == ["Take the badge", "Run for the stairs"]
    assert ferry_found(repaired) == []
    # Too few would remain: kept, for the checks to refuse.
    two = tidy(ferry_draft(choices=choices[:2]), FERRY, FERRY.scene("heiress"))
    assert ferry_found(two) == ["choices[0].label is only a name or a title from the story: 'Lily Vance'"]


def test_a_persona_story_s_scene_opens_on_the_protagonist() -> None:
    """The grammar makes the model name the protagonist: the narrator's opening line starts with ``{name}``."""
    shape = schema.scene_schema(FERRY, must_end=False)
    assert list(shape["properties"])[:4] == ["title", "place", "opening", "lines"]
    assert "opening" in shape["required"] and shape["properties"]["lines"]["maxItems"] == schema.LINES_MAX - 1
    pattern = re.compile(shape["properties"]["opening"]["pattern"])
    assert pattern.match("{name} slips into the cabin and shuts the door.")
    assert not pattern.match("Mara slips into the cabin.") and not pattern.match("{name} {name} {name}.")
    assert "opening" not in schema.scene_schema(STORY, must_end=False)["properties"]
    assert "opening" in gbnf(shape)
    answer = json.dumps({**ferry_draft().model_dump(exclude={"opening"}), "opening": "{name} finds the photo."})
    opened = schema.Draft.model_validate_json(answer).opened()
    assert opened.opening is None and (opened.lines[0].speaker, opened.lines[0].text) == (
        NARRATOR, "{name} finds the photo.")
    assert ferry_found(opened) == []
    assert "The opening line says what {name} does next" in prompts.rules(FERRY)
