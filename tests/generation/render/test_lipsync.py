"""Lip-sync: espeak-ng's phonemes with their times, visemes per locale, tracks fitted to the slot, the drawn mouth
pass (only the mouth changes), and a voiced animatic whose picture moves with its sound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.dub import LineVoices, line_slots, mouth_tracks
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.lipsync import DrawnLipSync, MouthBox, line_track, phoneme_times, viseme_of
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import RenderRequest
from reelfork.generation.render.visemes import Cue, VisemeTrack, pose
from reelfork.generation.render.voice import EspeakSynthesizer
from reelfork.narrative.persona import fill
from reelfork.narrative.story import Story, Voice

from tests.helpers.media import lips_follow_voice
from tests.helpers.render import make_bible, make_scene

SEED = Path(__file__).parents[3] / "narrative" / "stories" / "last-ferry.yaml"


def seed() -> Story:
    return Story.model_validate(yaml.safe_load(SEED.read_text(encoding="utf-8")))


def test_visemes_are_looked_up_per_locale() -> None:
    assert viseme_of("m", "en") == viseme_of("b", "zh") == "closed"
    assert viseme_of("f", "es") == "fv"
    assert viseme_of("aI", "en") == "open" and viseme_of("u:", "en") == "round"
    # Mandarin's pinyin finals and retroflex affricates have their own rows.
    assert viseme_of("ua", "zh") == "round" and viseme_of("ua", "en") == "round"
    assert viseme_of("ts.h", "zh") == "wide" and viseme_of("ts.h", "en") == "mid"
    assert viseme_of("ai", "zh") == "open"
    assert viseme_of("_", "en") == viseme_of("", "zh") == "rest"


def test_phonemes_come_with_their_times_within_the_speech() -> None:
    voice = Voice(voice="en-us", pitch=50, rate=175)
    text = "No boats back till dawn, miss."
    phonemes = phoneme_times(text, "en-us", voice.pitch, voice.rate)
    speech = EspeakSynthesizer().synthesize(text, voice, "en")
    names = [name for _, name in phonemes]
    assert names[:2] == ["n", "oU"] and "b" in names and "m" in names
    times = [start for start, _ in phonemes]
    assert times == sorted(times) and times[0] == 0.0
    assert 0.5 * speech.duration < times[-1] <= speech.duration


def test_a_track_is_fitted_to_the_time_its_voice_takes() -> None:
    voice = Voice(voice="en-us")
    text = "Ten years ago my sister took your ferry."
    natural = EspeakSynthesizer().synthesize(text, voice, "en").resampled(SAMPLE_RATE).samples
    full = line_track(text, voice, "en", natural, len(natural) / SAMPLE_RATE)
    half = line_track(text, voice, "en", natural[::2], len(natural) / SAMPLE_RATE)
    assert [c.viseme for c in half.cues] == [c.viseme for c in full.cues]
    assert half.end == len(natural[::2]) / SAMPLE_RATE
    assert np.allclose([c.start for c in half.cues], [c.start / 2 for c in full.cues], atol=0.01)
    assert {"closed", "open", "round"} <= {c.viseme for c in full.cues}
    assert max(full.levels) == 1.0 and min(full.levels) < 0.2


def test_poses_move_between_shapes_and_rest_outside_the_line() -> None:
    track = VisemeTrack(cues=(Cue(start=0.0, viseme="open"), Cue(start=0.3, viseme="closed")), end=0.5)
    assert pose(track, -0.1) == pose(track, 0.7) == pose(VisemeTrack(), 0.2)
    opened, moving, closed = pose(track, 0.25), pose(track, 0.32), pose(track, 0.45)
    assert opened[1] > moving[1] > closed[1] == 0


def test_the_zh_mouth_follows_the_zh_voice_and_the_default_name(tmp_path: Path) -> None:
    story = seed()
    scene = story.scene("heiress")
    voices = LineVoices(EspeakSynthesizer(), tmp_path / "voices")
    slots = line_slots(story, scene, voices)
    english, chinese = mouth_tracks(story, scene, "en", slots, voices), mouth_tracks(story, scene, "zh", slots, voices)
    assert set(english) == set(chinese) == {line.id for line in scene.lines if line.speaker != "narrator"}
    assert english["l1"].cues != chinese["l1"].cues
    for track, line_id in ((english["l1"], "l1"), (chinese["l2"], "l2")):
        assert track.end <= slots[line_id] + 1e-6
    # "{name} Vance. ..." is mouthed with the persona's default name, whatever name a viewer gives.
    assert story.persona is not None
    text = fill(scene.lines[0].text, story.persona.name)
    voice = story.bible.character(scene.lines[0].speaker).voice
    speech = voices.speech(text, voice, "en")
    expected = line_track(text, voice, "en", speech[: round(slots["l1"] * SAMPLE_RATE)], len(speech) / SAMPLE_RATE)
    assert english["l1"].cues == expected.cues


def test_the_drawn_mouth_pass_changes_only_the_mouth() -> None:
    width, height = 64, 96
    body = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    body[:height] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
    mouth = MouthBox(x=16, y=40, width=32, height=20, lips=(170, 70, 70), key="test")
    lipsync = DrawnLipSync()
    frames = {}
    for shape in ("rest", "open", "round"):
        frame = body.copy()
        lipsync.sync(frame, mouth, VisemeTrack(cues=(Cue(start=0.0, viseme=shape),), end=1.0), 0.5)
        frames[shape] = frame
    for frame in frames.values():
        outside = frame[:height].astype(int) - body[:height]
        outside[mouth.y : mouth.y + mouth.height, mouth.x : mouth.x + mouth.width] = 0
        assert not outside.any()
    assert not np.array_equal(frames["open"], frames["rest"])
    assert not np.array_equal(frames["open"], frames["round"])


def test_a_voiced_animatic_moves_with_its_sound(tmp_path: Path) -> None:
    scene = make_scene().model_copy(update={"lines": make_scene().lines[1:]})  # characters speaking only
    output = tmp_path / "voiced.mp4"
    request = RenderRequest(scene=scene, bible=make_bible(), profile=PROFILES["preview"], output=output)
    AnimaticRenderer().render(request)
    assert lips_follow_voice(output) >= 0.3
