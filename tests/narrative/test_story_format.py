"""The story format's state features, their validation, stable line IDs, schema, exports and CLI."""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from reelfork.narrative.export import WrittenNode, to_dot, to_mermaid
from reelfork.narrative.expressions import always_one
from reelfork.narrative.formats import StoryError, load_story, parse_story
from reelfork.narrative.graph import validate
from reelfork.narrative.schema import schema_text
from reelfork.narrative.state import (
    UnavailableChoice,
    UnknownChoice,
    advance,
    available_choices,
    begin,
    choose,
    default_choice,
    start,
)
from reelfork.narrative.story import Story, build_story, collection_paused, story_from_json
from reelfork.server.cli import app
from reelfork.server.runtime import seed_story_files
from typer.testing import CliRunner

from bench.narrative import generated_story
from tests.helpers.stories import choice, scene, story

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data"
TRUST = {"trust": {"type": "int", "default": 0}, "met": {"type": "bool"}}
AT_LEAST_2 = {"op": ">=", "args": [{"var": "trust"}, 2]}


def problems(data: dict[str, Any]) -> list[str]:
    try:
        _, found = load_story(json.dumps(data))
    except StoryError as exc:
        found = exc.problems
    return [str(p) for p in found]


def test_conditions_effects_and_visits_decide_what_is_offered() -> None:
    data = story(
        scene("hall", choice("wait", "hall", effects=[{"add": "trust", "by": 1}]),
              choice("door", "end", condition=AT_LEAST_2),
              choice("again", "end", condition={"op": ">=", "args": [{"visits": "hall"}, 3]}),
              choice("met", "end", condition={"var": "met"}, effects=[{"set": "met", "to": False}])),
        scene("end"),
        variables=TRUST,
    )
    parsed = Story.model_validate(data)
    assert [p for p in validate(parsed) if p.severity == "error"] == []
    state = begin(parsed, 1)
    hall = parsed.scene("hall")
    assert state.variables == {"trust": 0, "met": False} and state.visits == {"hall": 1}
    assert [c.id for c in available_choices(parsed, state)] == ["wait"]
    with pytest.raises(UnavailableChoice):
        choose(state, hall, "door", "end")
    once = choose(state, hall, "wait", "hall")
    twice = choose(once, hall, "wait", "hall")
    assert state.variables["trust"] == 0 and twice.variables["trust"] == 2
    assert [c.id for c in available_choices(parsed, twice)] == ["wait", "door", "again"]
    assert twice.path == ["hall", "hall", "hall"] and twice.visits == {"hall": 3}
    done = choose(twice, hall, "door", "end")
    assert done.current == "end" and done.visits == {"hall": 3, "end": 1}
    assert len(done.model_dump_json()) < 2048


def test_once_choices_are_used_up_and_sticky_ones_are_not() -> None:
    data = story(
        scene("hub", choice("look", "hub", once=True), choice("leave", "end", sticky=True)),
        scene("end"),
    )
    parsed = Story.model_validate(data)
    hub = parsed.scene("hub")
    state = choose(begin(parsed, 1), hub, "look", "hub")
    assert [c.id for c in available_choices(hub, state)] == ["leave"]
    assert state.taken == ["hub/look"]
    with pytest.raises(UnavailableChoice, match="not offered"):
        choose(state, hub, "look", "hub")
    with pytest.raises(UnknownChoice, match="offers: look, leave"):
        choose(state, hub, "fly", "hub")
    with pytest.raises(StoryError, match="either 'once'"):
        parse_story(json.dumps(story(scene("a", choice("x", "a", once=True, sticky=True)))))


def test_default_choice_is_the_default_or_the_first_choice_still_offered() -> None:
    data = story(
        scene("ask", choice("yes", "end", condition={"var": "met"}), choice("no", "end"),
              default="yes"),
        scene("plain", choice("go", "end")),
        scene("end"),
        variables=TRUST,
    )
    parsed = Story.model_validate(data)
    state = begin(parsed, 1)
    fallback = default_choice(parsed, state)
    assert fallback is not None and fallback.id == "no"
    met = state.model_copy(update={"variables": {**state.variables, "met": True}})
    chosen = default_choice(parsed, met)
    assert chosen is not None and chosen.id == "yes"
    plain = default_choice(parsed.scene("plain"), advance(state, "plain"))
    assert plain is not None and plain.id == "go"
    assert default_choice(parsed.scene("end"), advance(state, "end")) is None
    found = problems(data)
    assert "warning: scenes[ask].default: default choice 'yes' can be hidden; when it is, the end of the choice " \
           "window takes the first choice still offered" in found


def test_old_sessions_keep_working() -> None:
    parsed = Story.model_validate(story(scene("a", choice("go", "b", effects=[{"add": "trust", "by": 2}])),
                                        scene("b"), variables=TRUST))
    legacy = start("test", 1, "a")
    assert legacy.model_dump(exclude_defaults=True).keys() == {"story", "version", "path", "visits"}
    moved = choose(legacy, parsed.scene("a"), "go", "b", story=parsed)
    assert moved.variables == {"trust": 2, "met": False}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"condition": {"var": "trsut"}},
         "error: scenes[a].choices[go].condition.var: unknown variable 'trsut'; did you mean 'trust'?"),
        ({"condition": {"op": "and", "args": [{"var": "met"}, {"var": "trust"}]}},
         "error: scenes[a].choices[go].condition.args[1]: 'and' needs a bool, got an int"),
        ({"condition": {"op": "==", "args": [{"var": "trust"}, "two"]}},
         "error: scenes[a].choices[go].condition.args: '==' compares an int with a string; compare values of the "
         "same type"),
        ({"condition": {"var": "trust"}},
         "error: scenes[a].choices[go].condition: a condition must be a bool, got int; compare it, like "
         "{op: '>=', args: [{var: trust}, 2]}"),
        ({"condition": {"op": ">", "args": [{"visits": "nowhere"}, 0]}},
         "error: scenes[a].choices[go].condition.args[0].visits: visits of unknown scene 'nowhere'"),
        ({"effects": [{"set": "met", "to": 3}]},
         "error: scenes[a].choices[go].effects[0].to: 'met' is a bool, got an int"),
        ({"effects": [{"add": "met", "by": 1}]},
         "error: scenes[a].choices[go].effects[0].add: 'add' needs an int variable; 'met' is a bool"),
        ({"effects": [{"set": "mood", "to": "x"}]},
         "error: scenes[a].choices[go].effects[0].set: unknown variable 'mood'; declare it under the story's "
         "'variables'"),
    ],
)
def test_unknown_names_and_type_errors_are_located(change: dict[str, Any], expected: str) -> None:
    data = story(scene("a", choice("go", "b", **change), choice("stay", "b")), scene("b"), variables=TRUST)
    assert expected in problems(data)


def test_default_is_checked_and_the_old_timeout_is_refused() -> None:
    data = story(scene("a", choice("go", "b"), default="run"), scene("b"))
    assert "error: scenes[a].default: default choice 'run' is not one of this scene's choices: go" in problems(data)
    old = story(scene("a", choice("go", "b"), default="go", timeout_s=5), scene("b"))
    (found,) = problems(old)
    assert found.startswith("error: scenes[0]: ") and "'timeout_s' is no longer part of the format" in found
    assert "choice_window" in found


def test_dead_ends_proven_and_possible() -> None:
    never = {"op": ">", "args": [{"var": "trust"}, 5]}
    proven = story(scene("a", choice("go", "b", condition=never)), scene("b"), variables=TRUST)
    assert problems(proven) == [
        "error: scenes[a].choices: dead end: every choice's condition is always false (it reads only variables "
        "no effect changes), so a viewer here has nothing to choose"
    ]
    possible = story(
        scene("a", choice("go", "b", condition=AT_LEAST_2), choice("up", "a", effects=[{"add": "trust", "by": 1}],
                                                                    condition={"var": "met"})),
        scene("b"), variables=TRUST,
    )
    assert any(p.startswith("warning: scenes[a].choices: possible dead end") for p in problems(possible))
    chain = story(
        scene("a", choice("yes", "b", condition={"var": "met"}),
              choice("no", "b", condition={"op": "not", "args": [{"var": "met"}]})),
        scene("b", choice("low", "c", condition={"op": "<", "args": [{"var": "trust"}, 1]}),
              choice("high", "c", condition={"op": ">=", "args": [{"var": "trust"}, 1]})),
        scene("c"),
        variables={**TRUST, "met": {"type": "bool"}},
    )
    chain["scenes"][0]["choices"].append(choice("flip", "a", effects=[{"set": "met", "to": True}], once=True,
                                                condition={"var": "met"}))
    assert not any("dead end" in p for p in problems(chain))
    looping = story(scene("a", choice("look", "a", once=True), choice("peek", "b", once=True)), scene("b"))
    assert any("possible dead end" in p for p in problems(looping))


def test_always_one_proves_if_else_chains_only() -> None:
    met = {"var": "met"}
    parsed = Story.model_validate(story(scene("a", choice("x", "a", condition=met),
                                              choice("y", "a", condition={"op": "not", "args": [met]})),
                                        variables=TRUST))
    conditions = [c.condition for c in parsed.scenes[0].choices if c.condition is not None]
    assert always_one(conditions)
    assert not always_one(conditions[:1])


def test_closed_cycle_is_named() -> None:
    data = story(scene("a", choice("in", "b"), choice("out", "end")), scene("b", choice("on", "c")),
                 scene("c", choice("back", "b")), scene("end"))
    found = problems(data)
    assert "error: scenes[b].choices: cycle with no exit: every choice of b, c leads back into it; add a choice " \
           "that leaves the cycle, or an ending" in found


def test_line_ids_are_derived_stably_and_explicit_ids_win() -> None:
    def ids(lines: list[dict[str, str]]) -> list[str]:
        parsed = Story.model_validate(story({**scene("a"), "lines": lines}))
        return [line.id for line in parsed.scenes[0].lines]

    hello, bye = {"speaker": "ann", "text": "Hello."}, {"speaker": "ann", "text": "Bye."}
    first = ids([hello, bye, hello])
    assert len(set(first)) == 3 and all(i.startswith("l-") for i in first)
    edited = ids([{"speaker": "ann", "text": "New line."}, hello, bye, hello])
    assert edited[1:] == first
    assert ids([{**hello, "id": "greet"}, bye])[0] == "greet"
    assert ids([{**hello, "text": "Hello!"}, bye])[1] == first[1]
    with pytest.raises(StoryError, match="line id 'x' is used twice"):
        parse_story(json.dumps(story({**scene("a"), "lines": [{**hello, "id": "x"}, {**bye, "id": "x"}]})))


def test_seed_story_digest_is_unchanged_by_the_new_fields() -> None:
    parsed, _ = load_story(seed_story_files()[0].read_bytes())
    dumped = parsed.model_dump(mode="json")
    assert "variables" not in dumped
    assert not {"condition", "effects", "once", "sticky"} & set(dumped["scenes"][0]["choices"][0])
    assert Story.model_validate_json(parsed.model_dump_json()).digest() == parsed.digest()


def test_json_schema_file_is_up_to_date() -> None:
    committed = (ROOT / "narrative" / "story.schema.json").read_text()
    assert committed == schema_text(), "run: reelfork story schema -o narrative/story.schema.json"
    schema = json.loads(committed)
    assert "Choice" in schema["$defs"] and "id" not in schema["$defs"]["Line"]["required"]


def test_exports_draw_scenes_open_nodes_endings_counts_and_written_scenes() -> None:
    parsed, _ = load_story(seed_story_files()[0].read_bytes())
    counts = {("blackout", "hold"): 12}
    written = [WrittenNode("blackout", "cabin", "g-abc", "The Cabin")]
    dot = to_dot(parsed, counts=counts, written=written)
    assert dot.startswith('digraph "last-ferry" {') and dot.rstrip().endswith("}")
    assert '"blackout" -> "cargo-hold" [label="Follow the note to the hold (12)"];' in dot
    assert '"open:blackout/cabin" -> "written:g-abc"' in dot and "peripheries=2" in dot
    mermaid = to_mermaid(parsed, counts=counts, written=written)
    assert mermaid.startswith("flowchart TD")
    assert '-->|"Follow the note to the hold (12)"|' in mermaid and "class " in mermaid
    broken = Story.model_validate(story(scene("a", choice("go", "nowhere", label='Say "hi" | <b>'))))
    assert '#quot;hi#quot; #124; #lt;b#gt;' in to_mermaid(broken)
    assert '"nowhere (missing)"' in to_dot(broken)


def test_a_hundred_thousand_scenes_validate() -> None:
    parsed = build_story(generated_story(100_000, lean=True))
    assert [p for p in validate(parsed) if p.severity == "error"] == []


@pytest.mark.parametrize(("text", "key"), [("null: 1", "None"), ("7: x", "7")])
def test_a_key_that_is_not_a_string_is_named_where_it_is(text: str, key: str) -> None:
    with pytest.raises(StoryError) as raised:
        parse_story(text)
    assert ("story", f"Keys should be strings, not {key}") in [(p.where, p.message) for p in raised.value.problems]


def test_an_excerpt_keeps_the_story_but_other_scenes_and_their_translations() -> None:
    data = story(scene("a", choice("go", "b")), scene("b", choice("on", "c")), scene("c"))
    data["locales"] = ["en", "es"]
    data["translations"] = {"es": {"a/title": "La A", "b/title": "La B", "b/line:l1": "En b.", "c/title": "La C"}}
    whole = Story.model_validate(data)
    whole.scene("a")  # the whole story's scene index, cached on it
    part = whole.excerpt([whole.scene("b")])
    assert [s.id for s in part.scenes] == ["b"] and part.scene("b") is whole.scene("b")
    assert part.translations == {"es": {"b/title": "La B", "b/line:l1": "En b."}}
    assert (part.bible, part.locales, part.start) == (whole.bible, whole.locales, "a")
    with pytest.raises(KeyError):
        part.scene("a")
    assert story_from_json(part.model_dump_json()) == part  # what a render process is handed parses back


def test_collection_paused_restores_the_collector_and_freezes_what_lasts() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with collection_paused(lasting=True):
            kept = [[index] for index in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


runner = CliRunner()


def test_cli_exit_status(tmp_path: Path) -> None:
    seed = str(seed_story_files()[0])
    assert runner.invoke(app, ["story", "validate", seed]).exit_code == 0
    assert runner.invoke(app, ["story", "validate", str(tmp_path / "missing.yaml")]).exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ntitle: [unclosed\n")
    result = runner.invoke(app, ["story", "validate", str(bad)])
    assert result.exit_code == 1 and "bad.yaml:3:" in result.output
    assert runner.invoke(app, ["story", "validate", str(ROOT / "pyproject.toml")]).exit_code == 2
    assert runner.invoke(app, ["story", "validate", str(DATA / "lighthouse.yarn")]).exit_code == 0
    assert runner.invoke(app, ["story", "validate", str(DATA / "harbor.twee")]).exit_code == 0


def test_cli_import_and_graph(tmp_path: Path) -> None:
    out = tmp_path / "harbor.yaml"
    result = runner.invoke(app, ["story", "import", str(DATA / "harbor.twee"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "SugarCube macro <<set>> dropped" in result.output
    assert runner.invoke(app, ["story", "validate", str(out)]).exit_code == 0
    as_json = tmp_path / "lighthouse.json"
    assert runner.invoke(app, ["story", "import", str(DATA / "lighthouse.yarn"), "-o", str(as_json)]).exit_code == 0
    assert json.loads(as_json.read_text())["variables"]["trust"] == {"type": "int", "default": 0}
    assert runner.invoke(app, ["story", "import", str(DATA / "harbor.twee"), "-o", str(tmp_path / "x.txt")]
                         ).exit_code == 2
    for suffix in (".dot", ".mmd"):
        picture = tmp_path / f"graph{suffix}"
        assert runner.invoke(app, ["story", "graph", str(seed_story_files()[0]), "-o", str(picture)]).exit_code == 0
        assert "blackout" in picture.read_text()
    svg = runner.invoke(app, ["story", "graph", str(seed_story_files()[0]), "-o", str(tmp_path / "g.svg")])
    if shutil.which("dot") is None:
        assert svg.exit_code == 2 and "apt-get install graphviz" in svg.output
    else:
        assert svg.exit_code == 0
