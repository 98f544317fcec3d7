"""Property tests: random graphs and random texts never crash the validator or the importers, and
valid graphs can always be played to an ending or an open node."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reelfork.narrative.formats import StoryError, StoryFormat, read_story
from reelfork.narrative.graph import validate
from reelfork.narrative.state import available_choices, begin, choose
from reelfork.narrative.story import Story

from tests.helpers.stories import choice, scene, story

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = [f"s{i}" for i in range(8)]
CONDITIONS: list[Any] = [
    None, None, None, {"var": "flag"}, {"op": "not", "args": [{"var": "flag"}]},
    {"op": ">=", "args": [{"var": "trust"}, 1]}, {"op": ">", "args": [{"visits": "s0"}, 1]},
]
WILD_CONDITIONS: list[Any] = [{"var": "ghost"}, {"op": "+", "args": [1, 2]}, {"var": "trust"}, {"op": "?"}]
EFFECTS: list[Any] = [[], [], [{"add": "trust", "by": 1}], [{"set": "flag", "to": True}]]
WILD_EFFECTS: list[Any] = [[{"set": "flag", "to": 2}], [{"add": "nope", "by": 1}], [{"mul": 2}]]
VARIABLES = {"trust": {"type": "int"}, "flag": {"type": "bool"}}


@st.composite
def graphs(draw: st.DrawFn, wild: bool = True) -> dict[str, Any]:
    """Up to 8 scenes with random targets, conditions, effects, once, open choices and endings.

    ``wild`` graphs also hold missing targets, unknown names, type errors and malformed entries.
    """
    conditions = CONDITIONS + WILD_CONDITIONS if wild else CONDITIONS
    effects = EFFECTS + WILD_EFFECTS if wild else EFFECTS
    missing = ["missing"] if wild else []
    defaults = [None, "c0", "zz"] if wild else [None, "c0"]
    count = draw(st.integers(1, 8))
    scenes = []
    for index in range(count):
        if draw(st.booleans()) and index:
            scenes.append(scene(NAMES[index]))
            continue
        choices = []
        for number in range(draw(st.integers(1, 4))):
            extra: dict[str, Any] = {
                "condition": draw(st.sampled_from(conditions)), "effects": draw(st.sampled_from(effects)),
                "once": draw(st.booleans()),
            }
            if draw(st.integers(0, 9)) == 0:
                choices.append({"id": f"c{number}", "label": "Open", "open": {"hint": "Something happens."},
                                **extra})
            else:
                target = draw(st.sampled_from(NAMES[:count] + missing))
                choices.append(choice(f"c{number}", target, **extra))
        default = draw(st.sampled_from(defaults))
        scenes.append(scene(NAMES[index], *choices, **({"default": default} if default else {})))
    return story(*scenes, variables=VARIABLES)


@SETTINGS
@given(graphs())
def test_random_graphs_never_crash_the_validator(data: dict[str, Any]) -> None:
    try:
        parsed = Story.model_validate(data)
    except ValueError:
        return
    found = validate(parsed)
    assert found == validate(parsed)
    for problem in found:
        assert problem.severity in {"error", "warning"} and problem.where and problem.message


@settings(SETTINGS, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(graphs(wild=False), st.randoms(use_true_random=False))
def test_valid_graphs_without_dead_end_warnings_never_leave_a_viewer_stuck(
    data: dict[str, Any], rng: random.Random
) -> None:
    parsed = Story.model_validate(data)
    problems = validate(parsed)
    assume(not any(p.severity == "error" or "dead end" in p.message for p in problems))
    state = begin(parsed, 1)
    for _ in range(60):
        current = parsed.scene(state.current)
        if current.ending:
            return
        offered = available_choices(parsed, state)
        assert offered, f"stuck in {current.id}"
        taken = rng.choice(offered)
        if taken.open is not None:
            return
        assert taken.target is not None
        state = choose(state, current, taken.id, taken.target)


@st.composite
def forward_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid-by-shape graphs: unconditional forward choices, conditional extras, ``once`` choices back."""
    count = draw(st.integers(2, 12))
    names = [f"s{i}" for i in range(count)]
    scenes = []
    for index in range(count - 1):
        forward = draw(st.integers(index + 1, count - 1))
        choices = [choice("on", names[forward], effects=draw(st.sampled_from(EFFECTS[:4])))]
        if draw(st.booleans()):
            choices.append(choice("maybe", names[draw(st.integers(index + 1, count - 1))],
                                  condition={"op": ">=", "args": [{"var": "trust"}, draw(st.integers(0, 3))]}))
        if draw(st.booleans()):
            choices.append(choice("back", names[draw(st.integers(0, index))], once=True))
        if draw(st.integers(0, 5)) == 0:
            choices.append({"id": "open", "label": "Open", "open": {"hint": "The writer continues."}})
        scenes.append(scene(names[index], *choices))
    scenes.append(scene(names[-1]))
    return story(*scenes, variables=VARIABLES)


@SETTINGS
@given(forward_graphs(), st.randoms(use_true_random=False))
def test_every_random_playthrough_of_a_valid_graph_ends_within_a_bound(
    data: dict[str, Any], rng: random.Random
) -> None:
    parsed = Story.model_validate(data)
    assert not [p for p in validate(parsed) if p.severity == "error"]
    backs = sum(1 for s in parsed.scenes for c in s.choices if c.once)
    bound = len(parsed.scenes) * (backs + 1) + 1
    state = begin(parsed, 1)
    for _ in range(bound):
        current = parsed.scene(state.current)
        if current.ending:
            return
        offered = available_choices(parsed, state)
        assert offered
        taken = rng.choice(offered)
        if taken.open is not None:
            return
        assert taken.target is not None
        state = choose(state, current, taken.id, taken.target)
    raise AssertionError(f"no ending or open node within {bound} choices: {state.path}")


def _never_crashes(text: str | bytes, kind: StoryFormat) -> None:
    try:
        parsed, warnings = read_story(text, source="random", kind=kind)
    except StoryError as exc:
        assert exc.problems and all(p.where.startswith(("random", "scenes", "bible", "start", "id", "title",
                                                          "variables", "language", "open_depth", "story"))
                                    for p in exc.problems), exc.problems
        return
    validate(parsed)
    assert all(w.severity == "warning" for w in warnings)


@SETTINGS
@given(st.sampled_from(["story", "twee", "yarn"]), st.text(max_size=400))
def test_random_text_never_crashes_a_reader(kind: StoryFormat, text: str) -> None:
    _never_crashes(text, kind)


TWEE_PIECES = st.sampled_from([
    ":: Start\n", ":: A [t1 t2]\n", ':: B {"position":"1,2"}\n', ":: C\\[x\\] [tag\n", "::\n",
    ":: StoryData\n", '{"start": "A"}\n', ":: StoryTitle\n", "Title\n", "[[A]]\n", "[[go->B]]\n",
    "[[C\\[x\\]<-back]]\n", "[[text|Start]]\n", "[[broken\n", "<<set $x to 1>>\n", "(if: $x)[hi]\n",
    "Plain prose with [[a link->A]] inside.\n", "<b>bold</b>\n", "\n", "[[]]\n", "[[->]]\n",
])
YARN_PIECES = st.sampled_from([
    "title: Start\n", "title: A\n", "tags: x y\n", "---\n", "===\n", "Ann: Hello.\n", "Plain line #line:l1\n",
    "-> Go\n", "    <<jump A>>\n", "-> Wait <<if $n > 1>>\n", "    Ann: Waiting.\n", "<<if $n == 2>>\n",
    "<<elseif $flag>>\n", "<<else>>\n", "<<endif>>\n", "<<set $n to $n + 1>>\n", "<<declare $n = 0>>\n",
    "<<declare $flag = false>>\n", "<<stop>>\n", "<<wait 1>>\n", "<<jump Start>>\n", "=> Line group\n",
    "{$n} coins\n", "<<set $n to visited(\"A\")>>\n", "// comment\n",
])


@SETTINGS
@given(st.lists(TWEE_PIECES, max_size=30))
def test_random_twee_files_never_crash(pieces: list[str]) -> None:
    _never_crashes("".join(pieces), "twee")


@SETTINGS
@given(st.lists(YARN_PIECES, max_size=40))
def test_random_yarn_files_never_crash(pieces: list[str]) -> None:
    _never_crashes("".join(pieces), "yarn")


@SETTINGS
@given(graphs())
def test_random_story_files_never_crash(data: dict[str, Any]) -> None:
    _never_crashes(json.dumps(data), "story")
