"""Twee 3 and Yarn Spinner import: the same paths as the source, every drop warned, bad input located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reelfork.narrative.formats import MAX_STORY_BYTES, StoryError, StoryFormat, load_story, read_story
from reelfork.narrative.graph import validate
from reelfork.narrative.problems import Problem
from reelfork.narrative.state import available_choices, begin, choose
from reelfork.narrative.story import Story
from reelfork.narrative.twee import import_twee
from reelfork.narrative.yarn import import_yarn

from tests.helpers.stories import play

DATA = Path(__file__).resolve().parents[1] / "data"


def harbor() -> tuple[Story, list[Problem]]:
    return load_story((DATA / "harbor.twee").read_bytes(), source="harbor.twee", kind="twee")


def lighthouse() -> tuple[Story, list[Problem]]:
    return load_story((DATA / "lighthouse.yarn").read_bytes(), source="lighthouse.yarn", kind="yarn")


@pytest.mark.parametrize(
    ("picks", "titles"),
    [
        (["take the lantern", "Look for whoever lit it", "Stay and listen"],
         ["Pier", "Lantern Post", "Boathouse [old]", "Radio"]),
        (["Walk to the ferry", "Turn back", "Walk to the ferry", "Board"],
         ["Pier", "Ferry Gate", "Pier", "Ferry Gate", "Crossing"]),
        (["take the lantern", "Hurry to the ferry", "Board"], ["Pier", "Lantern Post", "Ferry Gate", "Crossing"]),
        (["take the lantern", "Look for whoever lit it", "Ferry Gate", "Board"],
         ["Pier", "Lantern Post", "Boathouse [old]", "Ferry Gate", "Crossing"]),
    ],
)
def test_twee_story_plays_the_paths_of_its_links(picks: list[str], titles: list[str]) -> None:
    story, _ = harbor()
    assert play(story, picks) == titles


def test_twee_keeps_title_start_tags_and_warns_for_every_macro() -> None:
    story, warnings = harbor()
    assert (story.title, story.start) == ("The Harbor Lights", "Pier")
    assert story.scene("Pier").tags == ["intro", "night"] and story.scene("Radio").ending
    assert [c.label for c in story.scene("Lantern-Post").choices] == ["Hurry to the ferry", "Look for whoever lit it"]
    assert story.scene("Pier").lines[1].text == "You could take the lantern or walk on."
    messages = [str(w) for w in warnings]
    assert "warning: harbor.twee:13: passage 'StoryInit' is story-format code or chrome; dropped" in messages
    assert "warning: harbor.twee:18: SugarCube macro <<set>> dropped: story-format code is not imported" in messages
    assert sum("harbor.twee:29: SugarCube macro" in m for m in messages) == 2
    assert [p for p in validate(story) if p.severity == "error"] == []


def test_twee_harlowe_macros_setters_and_extra_links_are_warned() -> None:
    text = (
        ':: StoryData\n{"start": "A"}\n\n:: A\n(set: $gold to 5)(if: $gold > 2)[You are rich.]\n'
        "[[go->B][$x to 1]] [[B]] [[C]] [[D]] [[E]]\n:: B\nEnd.\n:: C\nEnd.\n:: D\nEnd.\n:: E\nEnd.\n"
    )
    story, warnings = import_twee(text, source="h.twee")
    messages = " | ".join(str(w) for w in warnings)
    assert "h.twee:5: Harlowe macro (set:) dropped" in messages and "Harlowe macro (if:) dropped" in messages
    assert "h.twee:6: the setter [$x to 1] of link [[go->B]] was dropped" in messages
    assert "has 5 links; a scene offers at most 4 choices, so the links to 'E' were dropped" in messages
    assert story.scene("A").lines[0].text == "You are rich."


@pytest.mark.parametrize(
    ("picks", "titles"),
    [
        (["I'm lost. Please let me in.", "Ask about the locked door.", "Take them to the harbor police."],
         ["Start", "Kitchen", "Lamp", "Cellar"]),
        (["Open up, or I break the door!", "Steal the keeper's key.", "Burn the logs."],
         ["Start", "Kitchen", "Lamp", "Cellar", "Morning"]),
        (["Open up, or I break the door!", "Ask about the light."], ["Start", "Kitchen", "Lamp", "Morning"]),
        (["Walk back into the storm."], ["Start", "Storm"]),
    ],
)
def test_yarn_story_plays_the_paths_of_its_options_jumps_and_ifs(picks: list[str], titles: list[str]) -> None:
    story, _ = lighthouse()
    assert play(story, picks) == titles


def test_yarn_variables_conditions_line_ids_and_dropped_commands() -> None:
    story, warnings = lighthouse()
    assert {name: (v.type, v.initial) for name, v in story.variables.items()} == {
        "trust": ("int", 0), "has_key": ("bool", False), "name": ("string", "stranger"),
    }
    assert story.scene("Start").lines[0].id == "start01" and story.scene("Start").lines[1].speaker == "Keeper"
    assert story.scene("Kitchen").tags == ["interior", "warm"]
    state = begin(story, 1)
    start = story.scene("Start")
    rude = choose(state, start, "Open-up-or-I-break-the-door", "Kitchen")
    assert rude.variables["trust"] == -1
    kitchen = story.scene("Kitchen")
    branch = available_choices(story, rude)
    assert [c.label for c in branch] == ["Continue"]
    after = choose(rude, kitchen, branch[0].id, branch[0].target or "")
    assert [c.label for c in available_choices(story, after)] == ["Ask about the light.", "Steal the keeper's key."]
    assert "warning: lighthouse.yarn:57: command <<wait>> dropped: it has no equivalent in the story format" in [
        str(w) for w in warnings
    ]


def test_yarn_sets_in_the_start_node_become_defaults_and_undeclared_variables_are_inferred() -> None:
    text = (
        "title: Start\n---\n<<set $coins to 3>>\nHi.\n-> Spend <<if $coins > 2>>\n"
        "    <<set $coins to $coins - 3>>\n    <<jump End>>\n-> Leave\n===\ntitle: End\n---\nBye.\n<<stop>>\n===\n"
    )
    story, warnings = import_yarn(text, source="c.yarn")
    assert story.variables["coins"].initial == 3
    assert "warning: c.yarn:3: $coins is not declared; declared as int starting at 0" in [str(w) for w in warnings]
    spend = story.scene("Start").choice("Spend")
    assert spend.condition is not None and spend.target == "End"
    assert [p for p in validate(story) if p.severity == "error"] == []


@pytest.mark.parametrize(
    ("kind", "text", "where", "message"),
    [
        ("twee", ":: A [tag\nText\n", "t:1", "tag block"),
        ("twee", ":: A\nOne\n:: A\nTwo\n", "t:3", "defined twice (first at line 1)"),
        ("twee", ':: StoryData\n{"start": \n:: A\nx\n', "t:2", "StoryData is not valid JSON"),
        ("twee", ":: A\nGo [[there\n", "t:2", "not closed"),
        ("twee", "just text\n", "t:1", "no passages"),
        ("twee", ':: StoryData\n{"start": "Nope"}\n:: A\nx\n', "t:1", "start passage 'Nope' does not exist"),
        ("twee", "::   \nx\n", "t:1", "needs a name"),
        ("yarn", "title: A\n---\nHello\n", "t:1", "not closed with '==='"),
        ("yarn", "tags: x\n---\nHello\n===\n", "t:1", "needs a 'title:'"),
        ("yarn", "title: A\n---\n<<if $x>>\nHi\n===\n", "t:4", "not closed by <<endif>>"),
        ("yarn", "title: A\n---\n<<jump Nowhere>>\n===\n", "t:3", "goes to node 'Nowhere', which does not exist"),
        ("yarn", "title: A\n---\n-> Go <<jump Nowhere>>\n===\n", "t:3", "in node 'A' goes to node 'Nowhere'"),
        ("yarn", 'title: A\n---\n-> Go <<if visited("Nowhere")>>\n===\n', "t:3", "refers to node 'Nowhere', which"),
        ("yarn", "title: A\n---\n-> Go <<if $ghost>>\n===\n", "t:3", "$ghost is never declared"),
        ("yarn", "title: A\n---\n<<else>>\n===\n", "t:3", "without an opening <<if>>"),
        ("yarn", "title: A\nnot a header\n---\n===\n", "t:2", "expected a 'key: value'"),
        ("yarn", "", "t:1", "no nodes"),
        ("story", "id: x\ntitle: [unclosed\n", "t:3:", "invalid YAML"),
        ("story", '{"id": "x",', "t:1:", "invalid JSON"),
        ("story", "a: &a [1]\nb: *a\n", "t:2:", "aliases"),
    ],
)
def test_malformed_input_gives_a_located_error(kind: StoryFormat, text: str, where: str, message: str) -> None:
    with pytest.raises(StoryError) as caught:
        read_story(text, source="t", kind=kind)
    first = caught.value.problems[0]
    assert first.where.startswith(where) and message in first.message, str(first)


@pytest.mark.parametrize("kind", ["story", "twee", "yarn"])
def test_ten_megabyte_files_are_refused_with_a_located_error(kind: StoryFormat) -> None:
    huge = b"x" * (MAX_STORY_BYTES + 1)
    with pytest.raises(StoryError, match="larger than 10 MB") as caught:
        read_story(huge, source="big", kind=kind)
    assert caught.value.problems[0].where == "big"


def test_invalid_utf8_is_located() -> None:
    with pytest.raises(StoryError) as caught:
        read_story(b":: A\n\xff\n", source="bin.twee", kind="twee")
    assert caught.value.problems[0].where == "bin.twee:2"


def test_odd_unicode_names_import_to_a_working_graph() -> None:
    text = (":: StoryTitle\n夜の港\n:: 夜の港 [始まり]\n霧が出ている。\n[[Café 🌙->Café 🌙]]\n[[右へ|右\u200b]]\n"
            ":: Café 🌙\nFin.\n:: 右\u200b\nおわり。\n")
    story, _ = load_story(text, source="u.twee", kind="twee")
    assert story.title == "夜の港" and story.scene(story.start).tags == ["始まり"]
    assert play(story, ["Café 🌙"]) == ["夜の港", "Café 🌙"]
    assert play(story, ["右へ"]) == ["夜の港", "右\u200b"]
    yarn = (
        "title: Début\n---\nÉmile: Bonjour ☕\n-> Aller à 東京\n    <<jump 東京>>\n===\n"
        "title: 東京\n---\n終わり\n===\n"
    )
    imported, _ = load_story(yarn, source="u.yarn", kind="yarn")
    assert play(imported, ["Aller à 東京"]) == ["Début", "東京"]
    assert imported.bible.characters[0].name == "Émile"


def test_unicode_scene_ids_in_the_project_format_are_located_errors() -> None:
    text = (DATA / "harbor.twee").read_text()
    story, _ = load_story(text, source="harbor.twee", kind="twee")
    data = story.model_dump(mode="json")
    data["scenes"][0]["id"] = "夜"
    with pytest.raises(StoryError) as caught:
        load_story(json.dumps(data))
    assert caught.value.problems[0].where == "scenes[0].id"


def test_a_twee_link_to_a_missing_passage_names_it_as_written_at_its_line() -> None:
    text = ":: Start\nHello.\n[[Go on|Nowhere At All]]\n[[Stay]]\n[[Nowhere At All]]\n\n:: Stay\nBye.\n"
    with pytest.raises(StoryError) as caught:
        load_story(text, source="harbor.twee", kind="twee")
    errors = [(p.where, p.message) for p in caught.value.problems if p.severity == "error"]
    assert errors == [
        ("harbor.twee:3", "link [[Go on]] in passage 'Start' goes to passage 'Nowhere At All', which does not exist"),
        ("harbor.twee:5",
         "link [[Nowhere At All]] in passage 'Start' goes to passage 'Nowhere At All', which does not exist"),
    ]


def test_every_yarn_jump_to_a_missing_node_names_it_as_written_at_its_line() -> None:
    text = ("title: Start\n---\nHi.\n-> Go\n    <<jump Missing Node>>\n-> Stay\n    <<jump Nowhere>>\n===\n"
            "title: Dock Side\n---\n-> Sail <<jump Open Sea>>\n-> Wait <<jump Start>> <<if true>>\n===\n")
    with pytest.raises(StoryError) as caught:
        load_story(text, source="lighthouse.yarn", kind="yarn")
    errors = [(p.where, p.message) for p in caught.value.problems if p.severity == "error"]
    assert errors == [
        ("lighthouse.yarn:5",
         "<<jump Missing Node>> in node 'Start' goes to node 'Missing Node', which does not exist"),
        ("lighthouse.yarn:7", "<<jump Nowhere>> in node 'Start' goes to node 'Nowhere', which does not exist"),
        ("lighthouse.yarn:11", "<<jump Open Sea>> in node 'Dock Side' goes to node 'Open Sea', which does not exist"),
    ]


def test_a_yarn_option_line_may_end_with_its_jump() -> None:
    text = ("title: Start\n---\n<<declare $brave = false>>\nHi.\n-> Sail <<jump Sea>>\n-> Swim <<jump Sea>> "
            "<<if $brave>>\n-> Wait\n    Nothing happens.\n===\ntitle: Sea\n---\nWaves.\n===\n")
    story, warnings = load_story(text, source="dock.yarn", kind="yarn")
    start = story.scene(story.start)
    assert [(c.label, c.target) for c in start.choices[:2]] == [("Sail", "Sea"), ("Swim", "Sea")]
    assert start.choices[1].condition is not None and start.choices[0].condition is None
    assert play(story, ["Sail"]) == ["Start", "Sea"]
    assert not [w for w in warnings if "<<" in w.message]
