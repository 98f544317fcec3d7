"""The play side's per-viewer text: names, locales, authored and machine translations; the name check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from reelfork.generation.writer.checks import WordListPolicy
from reelfork.narrative.persona import InvalidName
from reelfork.narrative.story import Story
from reelfork.server.dubbing import Dubbing, checked_name, with_machine
from reelfork.server.settings import Settings

SEED = Path(__file__).parents[2] / "narrative" / "stories" / "last-ferry.yaml"


@pytest.fixture(scope="module")
def story() -> Story:
    return Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def dubbing(tmp_path_factory: pytest.TempPathFactory) -> Dubbing:
    folder = tmp_path_factory.mktemp("dubbing")
    return Dubbing(Settings(data_dir=folder / "data"))


def test_each_viewer_reads_their_name_in_their_locale(story: Story, dubbing: Dubbing) -> None:
    scene = story.scene("heiress")
    zoe = dubbing.text(story, scene, "en", "Zoë")
    assert zoe.lines[0].text.startswith("Zoë Vance.")
    assert zoe.lines[1].speaker == "Zoë"  # Mara's line, said by the viewer's character
    spanish = dubbing.text(story, scene, "es", "Zoë")
    assert spanish.lines[0].text.startswith("Zoë Vance. Pagué")
    assert spanish.scene.title == story.translations["es"]["heiress/title"]
    assert not any(line.machine_translated for line in spanish.lines)


def test_machine_translations_fill_only_what_no_table_has_and_are_marked(story: Story, dubbing: Dubbing) -> None:
    scene = story.scene("heiress")
    bare = story.model_copy(update={"translations": {"es": {}}})
    machine = {"heiress/line:l3": "Y la dejaste sola, {name}.", "heiress/title": "La heredera (máquina)"}
    text = dubbing.text(bare, scene, "es", "Ada", machine)
    flags = {line.id: line.machine_translated for line in text.lines}
    assert flags == {"l1": False, "l2": False, "l3": True, "l4": False}
    assert text.lines[2].text == "Y la dejaste sola, Ada."
    assert text.lines[0].text == scene.lines[0].text.replace("{name}", "Ada")  # no translation: the source text
    # An authored translation wins over a machine one.
    authored = dubbing.text(story, scene, "es", "Ada", machine)
    assert not any(line.machine_translated for line in authored.lines)
    assert with_machine(story, "es", machine).translations["es"]["heiress/title"] == story.translations["es"][
        "heiress/title"
    ]


@pytest.mark.parametrize(
    "name", ["a" * 500, "<script>alert(1)</script>", "Zo\u202eë", "Ada\n", "123", "", "   "]
)
def test_names_that_may_not_be_used(story: Story, name: str) -> None:
    with pytest.raises(InvalidName):
        checked_name(story, name, WordListPolicy())


def test_names_refused_by_the_content_policy(story: Story) -> None:
    with pytest.raises(InvalidName, match="content policy"):
        checked_name(story, "Bad Word", WordListPolicy(["bad"]))


def test_names_that_may(story: Story) -> None:
    assert checked_name(story, "  Zoë  O'Hara-Lee ", WordListPolicy()) == "Zoë O'Hara-Lee"
    assert checked_name(story, "美玲", WordListPolicy()) == "美玲"
    assert checked_name(story, None, WordListPolicy()) == "Mara"
