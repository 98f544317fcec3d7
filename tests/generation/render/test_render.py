"""The CPU animatic renderer, end to end: real espeak-ng, real H.264/AAC, checked from the outside
(ffprobe, the file's atoms, decoded pixels and samples), not by trusting the renderer's own word."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.labels import BADGE_SECONDS, BADGE_TEXT_COLOR, badge, read_aigc
from reelfork.generation.render.profiles import PROFILES, RenderProfile
from reelfork.generation.render.request import RenderedClip, RenderError, RenderRequest
from reelfork.generation.render.voice import UnknownVoiceError
from reelfork.narrative.story import Line, Scene

from tests.helpers.media import probe
from tests.helpers.render import (
    AIGC_FIELDS,
    assert_badge_shown,
    atom_paths,
    frames_at,
    last_decoded_frame,
    make_bible,
    make_scene,
)


def render(
    output: Path,
    profile: RenderProfile,
    scene: Scene | None = None,
    previous: Path | None = None,
    voice: str = "en-us+f3",
) -> RenderedClip:
    request = RenderRequest(
        scene=scene or make_scene(), bible=make_bible(voice), profile=profile, output=output, previous_frame=previous
    )
    return AnimaticRenderer().render(request)




def audio(path: Path) -> tuple[NDArray[np.float32], int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(chunks).astype(np.float32), int(stream.rate)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RenderedClip]:
    folder = tmp_path_factory.mktemp("render")
    return {name: render(folder / f"{name}.mp4", PROFILES[name]) for name in ("preview", "animatic")}


@pytest.mark.parametrize("profile", ["preview", "animatic"])
def test_clip_is_h264_aac_9_16(clips: dict[str, RenderedClip], profile: str) -> None:
    clip = clips[profile]
    info = probe(clip.path)
    video = next(stream for stream in info["streams"] if stream["codec_type"] == "video")
    sound = next(stream for stream in info["streams"] if stream["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert sound["codec_name"] == "aac" and sound["channels"] == 1
    assert (video["width"], video["height"]) == (PROFILES[profile].width, PROFILES[profile].height)
    assert video["width"] * 16 == video["height"] * 9
    assert video["r_frame_rate"] == f"{PROFILES[profile].fps}/1"
    assert float(info["format"]["duration"]) > 0
    assert clip.duration == pytest.approx(float(info["format"]["duration"]), abs=0.05)
    assert abs(float(video["duration"]) - float(sound["duration"])) < 0.1


def test_moov_precedes_media_data(clips: dict[str, RenderedClip]) -> None:
    paths = atom_paths(clips["animatic"].path.read_bytes())
    top = [path for path in paths if "/" not in path]
    assert top.index("moov") < top.index("mdat"), top


def test_aigc_label_is_in_moov_udta_meta(clips: dict[str, RenderedClip]) -> None:
    path = clips["animatic"].path
    assert "moov/udta/meta/ilst" in atom_paths(path.read_bytes())
    tags = probe(path)["format"]["tags"]
    value = json.loads(tags["AIGC"])
    assert set(value) == AIGC_FIELDS
    assert value["Label"] == "1" and value["ContentProducer"] and value["ProduceID"]
    label = read_aigc(path)
    assert label is not None and label.model_dump() == value


def test_visible_mark_on_the_first_seconds_only(clips: dict[str, RenderedClip]) -> None:
    clip = clips["animatic"]
    assert clip.duration > BADGE_SECONDS + 1
    mark = badge(clip.width)
    early, late_start, after = frames_at(clip.path, [0.0, 2.0, BADGE_SECONDS + 0.5])
    rows, cols = slice(mark.y, mark.y + mark.height), slice(mark.x, mark.x + mark.width)
    for frame in (early, late_start):
        assert_badge_shown(frame)
    gone = after[rows, cols].astype(int)
    assert (np.abs(gone - np.array(BADGE_TEXT_COLOR)).max(axis=2) < 40).mean() < 0.01
    assert np.abs(early[rows, cols].astype(int) - gone).mean() > 10


def test_last_frame_and_timings(clips: dict[str, RenderedClip]) -> None:
    clip = clips["animatic"]
    assert clip.last_frame == clip.path.with_suffix(".last.png")
    with Image.open(clip.last_frame) as image:
        assert image.size == (clip.width, clip.height)
        last = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert np.abs(last - last_decoded_frame(clip.path)).mean() < 4
    assert [timing.line_id for timing in clip.timings] == ["l1", "l2", "l3"]
    previous_end = 0.0
    for timing in clip.timings:
        assert previous_end <= timing.start < timing.end <= clip.duration
        previous_end = timing.end


def test_speech_is_where_the_timings_say(clips: dict[str, RenderedClip]) -> None:
    clip = clips["preview"]
    samples, rate = audio(clip.path)

    def loudness(start: float, end: float) -> float:
        return float(np.sqrt(np.mean(samples[int(start * rate) : int(end * rate)] ** 2)))

    assert loudness(0.0, clip.timings[0].start - 0.1) < 0.005
    for timing in clip.timings:
        assert loudness(timing.start, timing.end) > 0.02, timing


def test_next_clip_starts_from_the_last_frame(clips: dict[str, RenderedClip], tmp_path: Path) -> None:
    first = clips["preview"]
    elsewhere = make_scene(place="sunlit harbour market", mood="happy", scene_id="market")
    second = render(tmp_path / "next.mp4", PROFILES["preview"], scene=elsewhere, previous=first.last_frame)
    with Image.open(first.last_frame) as image:
        end_of_first = np.asarray(image.convert("RGB"), dtype=np.int16)
    start, settled = frames_at(second.path, [0.0, 1.0])
    assert np.abs(start - end_of_first).mean() < 6, "the next clip does not start where the previous one ended"
    assert np.abs(settled - end_of_first).mean() > 10, "the new place never appears"


def test_corrupt_previous_frame_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level(logging.WARNING, logger="reelfork.generation.render.finishing"):
        clip = render(tmp_path / "clip.mp4", PROFILES["preview"], previous=corrupt)
    assert clip.path.exists() and clip.duration > 0
    assert any("corrupt.png" in record.getMessage() for record in caplog.records)


def test_unknown_voice_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnknownVoiceError) as raised:
        render(tmp_path / "clip.mp4", PROFILES["preview"], voice="xx-nosuchvoice")
    message = str(raised.value)
    assert "xx-nosuchvoice" in message and "espeak-ng --voices" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_speaker_is_a_render_error(tmp_path: Path) -> None:
    scene = make_scene().model_copy(update={"lines": [Line(id="x", speaker="ghost", text="Boo.")]})
    with pytest.raises(RenderError, match="ghost"):
        render(tmp_path / "clip.mp4", PROFILES["preview"], scene=scene)


@pytest.mark.slow
def test_a_500_line_scene_renders(tmp_path: Path) -> None:
    lines = [Line(id=f"l{index}", speaker=("mei", "jun", "narrator")[index % 3], text="Yes.") for index in range(500)]
    scene = make_scene().model_copy(update={"lines": lines})
    clip = render(tmp_path / "long.mp4", PROFILES["preview"], scene=scene)
    assert len(clip.timings) == 500 and clip.duration > 500 * 0.25
