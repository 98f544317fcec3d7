"""A GPU worker's picture render conditioned on cast references, through the real loading code of both tiny
pipelines (video and text-to-image): the references are made once, named by the keys the server puts in the
clip key, and a new story version that leaves a character alone reuses its portrait."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from reelfork.generation.render.c2pa import read_provenance
from reelfork.generation.render.segments import SegmentPlan
from reelfork.generation.render.stills import plate_key, portrait_key, portraitist_name, reference_keys
from reelfork.narrative.appearance import Appearance
from reelfork.narrative.story import Line, Scene, Story
from reelfork.server import worker
from reelfork.server.components import RendererOptions
from reelfork.server.settings import Settings
from reelfork.server.store import clip_key

from tests.helpers.tiny_ltx import build_tiny_ltx
from tests.helpers.tiny_pixart import build_tiny_pixart

os.environ["HF_HUB_OFFLINE"] = "1"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers.*")

SEED = Path(__file__).resolve().parents[2] / "narrative" / "stories" / "last-ferry.yaml"
SCENE = Scene(
    id="deck",
    title="On Deck",
    place="the ferry's car deck",
    mood="tense",
    lines=[Line(id="l1", speaker="mara", text="Lily?"), Line(id="l2", speaker="jonah", text="Go below.")],
    ending=True,
)


@dataclass(frozen=True)
class Rendered:
    options: RendererOptions
    media: Path
    story: Story


def render(story: Story, media: Path, name: str, options: RendererOptions) -> tuple[float, str]:
    """The worker's own steps for a render job: plan the stream, then draw its picture in segments."""
    story_json, scene_json = story.model_dump_json(), SCENE.model_dump_json()
    plan = worker.picture_plan(story_json, scene_json, "fast", str(media), 2.0)
    segments = SegmentPlan(folder=media / "streams" / name, frames=plan.segment_frames)
    rendered = worker.render_picture(
        story_json, scene_json, "storm", None, "fast", str(media), f"clips/{name}.mp4", options, plan.slots, segments
    )
    assert rendered is not None  # the whole clip: no ``through``
    return rendered


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("worker")
    build_tiny_ltx(folder / "ltx")
    build_tiny_pixart(folder / "pixart")
    options = RendererOptions(
        threads=1, model_dir=folder / "ltx", stills_dir=folder / "pixart", c2pa_dir=folder / "c2pa",
        certificate=None, key=None, timestamp_url=None,
    )
    story = Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))
    media = folder / "media"
    duration, _ = render(story, media, "a", options)
    assert duration > 0 and (media / "clips" / "a.mp4").is_file()
    return Rendered(options, media, story)


def test_references_are_made_once_under_the_keys_the_clip_key_covers(rendered: Rendered) -> None:
    portraitist = portraitist_name(rendered.options.stills_dir or Path())
    bible = rendered.story.bible_for("storm")
    keys = reference_keys(SCENE, bible, portraitist)
    made = sorted(path.name for path in (rendered.media / worker.REFERENCES).iterdir())
    expected = sorted([f"portrait-{keys[0]}.png", f"portrait-{keys[1]}.png", f"plate-{keys[2]}.png"])
    assert made == expected
    assert keys[0] == portrait_key(bible.character("mara"), portraitist), "Mara in the storm coat, the viewer's look"
    portrait = rendered.media / worker.REFERENCES / f"portrait-{keys[0]}.png"
    provenance = read_provenance(portrait)
    assert provenance is not None and provenance.valid and provenance.created_by_ai, "portraits carry C2PA"
    before = {path: path.stat().st_mtime_ns for path in (rendered.media / worker.REFERENCES).iterdir()}
    render(rendered.story, rendered.media, "b", rendered.options)
    after = {path: path.stat().st_mtime_ns for path in (rendered.media / worker.REFERENCES).iterdir()}
    assert after == before, "the second render reuses every reference"


def test_clip_key_follows_the_references_and_not_the_story_version(rendered: Rendered, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, render_profile="fast", render_model_dir=Path("/models/ltx"),
        render_stills_dir=Path("/models/pixart"),
    )
    from reelfork.server.components import renderer_name

    renderer = renderer_name(settings)
    assert renderer == f"fast:ltx+{portraitist_name(Path('/models/pixart'))}"
    story = rendered.story
    key = clip_key(SCENE, story, "fast", renderer, "storm")
    retitled = story.model_copy(update={"title": "Last Ferry (director's cut)"})
    assert clip_key(SCENE, retitled, "fast", renderer, "storm") == key, "a new version that leaves the cast alone"
    other_stills = renderer.replace("pixart", "flux")
    assert clip_key(SCENE, story, "fast", other_stills, "storm") != key, "another portraitist, other references"
    assert clip_key(SCENE, story, "fast", renderer, "leather") != key, "another look, another portrait"
    jonah = story.bible.character("jonah")
    recast = [
        c.model_copy(update={"appearance": Appearance(hair_style="long")}) if c.id == "jonah" else c
        for c in story.bible.characters
    ]
    changed = story.model_copy(update={"bible": story.bible.model_copy(update={"characters": recast})})
    assert clip_key(SCENE, changed, "fast", renderer, "storm") != key
    assert portrait_key(jonah, "x") != portrait_key(changed.bible.character("jonah"), "x")
    assert plate_key(SCENE.place, SCENE.mood, "x") == plate_key(SCENE.place, SCENE.mood, "x")
