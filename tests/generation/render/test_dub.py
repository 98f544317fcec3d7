"""Factored media: one picture per look shared by every viewer, their own voice and subtitles per (locale, name).

Checked from the outside: ffmpeg's stream MD5s, ffprobe's language tags, the WebVTT text, the AIGC label
and c2pa's own Reader."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.c2pa import ClipSigner, read_provenance
from reelfork.generation.render.dub import (
    Assembled,
    LineVoices,
    assemble,
    line_slots,
    picture_request,
    viewer_bible,
)
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.labels import LikenessRelease
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import RenderError
from reelfork.generation.render.soundtrack import LEAD_IN, PAUSE
from reelfork.generation.render.voice import EspeakSynthesizer
from reelfork.narrative.appearance import Likeness
from reelfork.narrative.story import Story

from tests.helpers.media import assert_labelled, assert_vertical_h264_aac, probe
from tests.helpers.render import frames_at

SEED = Path(__file__).parents[3] / "narrative" / "stories" / "last-ferry.yaml"
SCENE = "heiress"
"""Short, and its first line names the protagonist."""


def stream_md5(path: Path, stream: str) -> str:
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy", "-f", "md5", "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class Viewers:
    story: Story
    pictures: dict[str, Path]
    clips: dict[str, Assembled]
    voices: LineVoices
    slots: dict[str, float]


@pytest.fixture(scope="module")
def viewers(tmp_path_factory: pytest.TempPathFactory) -> Viewers:
    folder = tmp_path_factory.mktemp("dub")
    story = Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))
    scene = story.scene(SCENE)
    voices = LineVoices(EspeakSynthesizer(), folder / "voices")
    slots = line_slots(story, scene, voices)
    signer = ClipSigner.development(folder / "c2pa")
    renderer = AnimaticRenderer(signer=signer)
    pictures = {}
    for look in ("slicker", "storm"):
        pictures[look] = folder / f"picture-{look}.mp4"
        renderer.render(picture_request(story, scene, look, PROFILES["preview"], slots, pictures[look]))
    wanted = {
        "zoe": ("slicker", "en", "Zoë"),
        "ann": ("slicker", "en", "Ann-Marie"),
        "storm": ("storm", "en", "Zoë"),
        "zh": ("slicker", "zh", "Zoë"),
    }
    clips = {
        key: assemble(pictures[look], story, scene, locale, name, slots, voices, folder / f"{key}.mp4", signer)
        for key, (look, locale, name) in wanted.items()
    }
    return Viewers(story=story, pictures=pictures, clips=clips, voices=voices, slots=slots)


def test_same_look_same_locale_shares_the_picture_bit_for_bit(viewers: Viewers) -> None:
    zoe, ann = viewers.clips["zoe"].path, viewers.clips["ann"].path
    assert stream_md5(zoe, "v") == stream_md5(ann, "v") == stream_md5(viewers.pictures["slicker"], "v")
    assert stream_md5(zoe, "a") != stream_md5(ann, "a")


def test_another_look_is_another_picture(viewers: Viewers) -> None:
    assert stream_md5(viewers.clips["storm"].path, "v") != stream_md5(viewers.clips["zoe"].path, "v")
    # Past the visible mark and the fade, the persona's card is drawn in the look's colour.
    slicker, storm = (frames_at(viewers.pictures[look], [4.0])[0] for look in ("slicker", "storm"))
    assert np.abs(slicker.astype(int) - storm.astype(int)).max() > 40


def test_locale_changes_only_sound_and_text(viewers: Viewers) -> None:
    chinese = viewers.clips["zh"]
    assert stream_md5(chinese.path, "v") == stream_md5(viewers.clips["zoe"].path, "v")
    audio = next(s for s in probe(chinese.path)["streams"] if s["codec_type"] == "audio")
    assert audio["tags"]["language"] in {"chi", "zho"}
    subtitles = chinese.subtitles.read_text(encoding="utf-8")
    assert subtitles.startswith("WEBVTT")
    assert "我花了大价钱" in subtitles and "Zoë·万斯" in subtitles
    assert chinese.machine_translated == ()


def test_names_are_in_text_and_subtitles_never_in_the_picture(viewers: Viewers) -> None:
    zoe, ann = viewers.clips["zoe"], viewers.clips["ann"]
    assert zoe.scene.lines[0].text.startswith("Zoë Vance.") and ann.scene.lines[0].text.startswith("Ann-Marie Vance.")
    vtt = zoe.subtitles.read_text(encoding="utf-8")
    assert "<v Zoë>" in vtt and "<v Celeste Harrow>" in vtt and "{name}" not in vtt


def test_every_viewer_clip_is_playable_and_labelled(viewers: Viewers) -> None:
    picture = probe(viewers.pictures["slicker"])
    assert [stream["codec_type"] for stream in picture["streams"]] == ["video"]  # no sound: every voice is a viewer's
    for clip in viewers.clips.values():
        duration = assert_vertical_h264_aac(clip.path)
        assert abs(duration - float(picture["format"]["duration"])) < 0.1
        assert_labelled(clip.path)


def test_lines_without_the_name_are_synthesised_once_per_locale(viewers: Viewers) -> None:
    # Slot sizing voiced every line in en, es and zh; the four viewers added only the lines naming them.
    story = viewers.story
    scene = story.scene(SCENE)
    naming = sum("{name}" in line.text for line in scene.lines)
    assert viewers.voices.synthesized == 3 * len(scene.lines) + 3 * naming


def test_a_voice_longer_than_its_slot_is_fitted(viewers: Viewers, tmp_path: Path) -> None:
    story, scene = viewers.story, viewers.story.scene(SCENE)
    tight = {line_id: seconds / 2 for line_id, seconds in viewers.slots.items()}
    picture = tmp_path / "tight.mp4"
    AnimaticRenderer().render(picture_request(story, scene, None, PROFILES["preview"], viewers.slots, picture))
    clip = assemble(picture, story, scene, "es", "Zoë", tight, viewers.voices, tmp_path / "es.mp4")
    cues = [line for line in clip.subtitles.read_text(encoding="utf-8").splitlines() if "-->" in line]
    assert len(cues) == len(scene.lines)


def test_a_locale_the_story_does_not_offer_is_refused(viewers: Viewers, tmp_path: Path) -> None:
    story = viewers.story
    with pytest.raises(RenderError, match="not offered"):
        assemble(viewers.pictures["slicker"], story, story.scene(SCENE), "fr", "Zoë", viewers.slots,
                 viewers.voices, tmp_path / "fr.mp4")
    assert not (tmp_path / "fr.mp4").exists()


def test_the_spliced_voice_decodes_as_the_lines_laid_on_their_slots(viewers: Viewers) -> None:
    story, scene = viewers.story, viewers.story.scene(SCENE)
    clip = viewers.clips["zoe"]
    with av.open(str(clip.path)) as container:
        heard = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
    expected = np.zeros(len(heard), dtype=np.float32)
    bible = viewer_bible(story, "en", "Zoë")
    position = round(LEAD_IN * SAMPLE_RATE)
    for line in clip.scene.lines:
        slot = round(viewers.slots[line.id] * SAMPLE_RATE)
        speech = viewers.voices.line(line, bible, "en")
        expected[position : position + len(speech)] = speech
        position += slot + round(PAUSE * SAMPLE_RATE)
    signal = float(np.sqrt(np.mean(expected**2)))
    assert signal > 0.01
    assert float(np.sqrt(np.mean((heard - expected) ** 2))) < 0.1 * signal  # AAC's loss, no misplaced segment
    assert scene.lines[0].id == clip.scene.lines[0].id


def test_a_picture_without_voice_needs_every_line_s_slot(viewers: Viewers, tmp_path: Path) -> None:
    story, scene = viewers.story, viewers.story.scene(SCENE)
    partial = dict(list(viewers.slots.items())[1:])
    with pytest.raises(ValueError, match="line_seconds for every line"):
        picture_request(story, scene, None, PROFILES["preview"], partial, tmp_path / "partial.mp4")


def test_a_viewer_clip_declares_the_licensed_likenesses_it_shows(viewers: Viewers, tmp_path: Path) -> None:
    story, scene = viewers.story, viewers.story.scene(SCENE)
    licensed = Likeness(kind="licensed", release="REL-2026-0007 (Celeste Harrow)")
    cast = [c.model_copy(update={"likeness": licensed}) if c.id == "celeste" else c for c in story.bible.characters]
    signed = story.model_copy(update={"bible": story.bible.model_copy(update={"characters": cast})})
    signer = ClipSigner.development(tmp_path / "c2pa")
    clip = assemble(
        viewers.pictures["slicker"], signed, scene, "zh", "Zoë", viewers.slots, viewers.voices, tmp_path / "zh.mp4",
        signer,
    )
    provenance = read_provenance(clip.path, signer.credentials.trust_anchor)
    assert provenance is not None and provenance.state == "Trusted", provenance
    assert provenance.likenesses == [
        LikenessRelease(character="celeste", name="Celeste Harrow", release="REL-2026-0007 (Celeste Harrow)")
    ]
