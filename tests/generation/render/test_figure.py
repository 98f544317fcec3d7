"""Drawn people: each field of an appearance shows, a portrait is stable, and a character is recognisably the same
figure in every clip (its drawn region across two clips, and its portrait, far closer than another character)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray
from PIL import Image
from reelfork.generation.render.animatic import AnimaticRenderer, plan_shots
from reelfork.generation.render.figure import figure, portrait, shot_boxes
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import RenderRequest
from reelfork.narrative.appearance import Appearance, Build, Detail, HairStyle, Outfit
from reelfork.narrative.story import Story, fill_scene

from tests.helpers.render import last_decoded_frame

SEED = Path(__file__).parents[3] / "narrative" / "stories" / "last-ferry.yaml"


def seed() -> Story:
    return Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))


def pixels(image: Image.Image) -> NDArray[np.int16]:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_a_portrait_is_the_same_every_time() -> None:
    appearance = seed().bible.character("mara").drawn()
    first, second = portrait(appearance, 256, 320), portrait(appearance, 256, 320)
    assert first.size == (256, 320) and first.mode == "RGB"
    assert first.tobytes() == second.tobytes()


CHANGES = [
    *[("hair_style", value) for value in get_args(HairStyle) if value != "short"],
    *[("outfit", value) for value in get_args(Outfit) if value != "jacket"],
    *[("build", value) for value in get_args(Build) if value != "average"],
    *[("detail", value) for value in get_args(Detail) if value != "none"],
    ("hair_color", "#d4b06a"), ("skin_tone", "#5c3a24"), ("outfit_color", "#aa2233"),
]


@pytest.mark.parametrize(("field", "value"), CHANGES)
def test_every_field_of_an_appearance_shows(field: str, value: str) -> None:
    plain = Appearance()
    changed = plain.model_copy(update={field: value})
    difference = np.abs(pixels(portrait(changed, 160, 200)) - pixels(portrait(plain, 160, 200)))
    assert (difference.max(axis=2) > 30).mean() > 0.001, f"{field}={value} barely changes the figure"


def test_the_mouth_box_is_inside_the_face_and_even() -> None:
    drawn = figure(Appearance(), 300, 500)
    x, y, w, h = drawn.mouth
    fx, fy, fw, fh = drawn.face
    assert fx <= x and x + w <= fx + fw and fy <= y and y + h <= fy + fh
    assert x % 2 == y % 2 == w % 2 == h % 2 == 0


def test_at_most_two_in_a_shot_and_the_speaker_always_in_it() -> None:
    story = seed()
    for scene in story.scenes:
        speakers = list(dict.fromkeys(line.speaker for line in scene.lines if line.speaker != "narrator"))
        characters = [story.bible.character(c) for c in speakers]
        shots = plan_shots(scene, characters)
        assert len(shots) == len(scene.lines)
        for line, shot in zip(scene.lines, shots, strict=True):
            assert len(shot) <= 2
            assert line.speaker == "narrator" or line.speaker in shot
        if len(speakers) <= 2:
            assert len(set(shots)) <= 1  # the camera never cuts


def face(
    frame: NDArray[np.uint8], box: tuple[int, int, int, int], size: tuple[int, int] = (96, 120)
) -> NDArray[np.int16]:
    """The head's region, resized, with the corners (backdrop around the oval) masked to grey."""
    x, y, w, h = box
    crop = Image.fromarray(frame).crop((x, y, x + w, y + h)).resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(crop, dtype=np.int16).copy()
    ys, xs = np.ogrid[-1 : 1 : size[1] * 1j, -1 : 1 : size[0] * 1j]
    array[(xs**2 + ys**2) > 0.8] = 128
    return array


def faces_in_clip(story: Story, scene_id: str, tmp_path: Path) -> dict[str, NDArray[np.int16]]:
    """Each figure's head in the scene's last frame (mouths at rest), rendered by the animatic at ``preview``."""
    profile = PROFILES["preview"]
    scene = fill_scene(story.scene(scene_id), "Mara")
    output = tmp_path / f"{scene_id}.mp4"
    AnimaticRenderer().render(RenderRequest(scene=scene, bible=story.bible, profile=profile, output=output))
    frame = last_decoded_frame(output)
    speakers = list(dict.fromkeys(line.speaker for line in scene.lines if line.speaker != "narrator"))
    shot = plan_shots(scene, [story.bible.character(c) for c in speakers])[-1]
    faces = {}
    for character_id, (x, y, w, h) in zip(shot, shot_boxes(len(shot), profile.width, profile.height), strict=True):
        fx, fy, fw, fh = figure(story.bible.character(character_id).drawn(), w, h).face
        faces[character_id] = face(frame, (x + fx, y + fy, fw, fh))
    return faces


def distance(a: NDArray[np.int16], b: NDArray[np.int16]) -> float:
    return float(np.abs(a - b).mean())


def test_a_character_is_the_same_figure_in_every_clip(tmp_path: Path) -> None:
    story = seed()
    # Mara stands left in one scene and right in another, before another place and mood.
    the_name, boarding = faces_in_clip(story, "the-name", tmp_path), faces_in_clip(story, "boarding", tmp_path)
    assert list(the_name) == ["mara", "celeste"] and list(boarding) == ["jonah", "mara"]
    same = distance(the_name["mara"], boarding["mara"])
    others = [distance(the_name["mara"], the_name["celeste"]), distance(boarding["mara"], boarding["jonah"])]
    assert same * 3 < min(others), (same, others)
    reference = portrait(story.bible.character("mara").drawn(), 270, 336)
    drawn = figure(story.bible.character("mara").drawn(), 270, round(336 * 0.86))
    fx, fy, fw, fh = drawn.face
    mara = face(np.asarray(reference), (fx, fy + 336 - drawn.image.height, fw, fh))
    assert distance(mara, boarding["mara"]) * 2 < distance(mara, boarding["jonah"])
    assert distance(mara, the_name["mara"]) * 2 < distance(mara, the_name["celeste"])
