"""Delivery formats: WebVTT per locale from a clip's line timings, and an episode of clips as HLS (fMP4)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from reelfork.generation.production.delivery import PLAYLIST, package_hls, write_webvtt
from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.encoding import Encoder
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import LineTiming, RenderedClip, RenderError, RenderRequest
from reelfork.narrative.story import Line, Scene

from tests.helpers.media import probe as ffprobe
from tests.helpers.render import make_bible, make_scene


def timed_clip(path: Path, timings: list[tuple[str, float, float]]) -> RenderedClip:
    """A clip record with these line timings; subtitles need no video."""
    return RenderedClip(
        path=path,
        duration=timings[-1][2],
        width=270,
        height=480,
        last_frame=path.with_suffix(".last.png"),
        timings=[LineTiming(line_id=line_id, start=start, end=end) for line_id, start, end in timings],
    )


def test_webvtt_has_one_timed_cue_per_line(tmp_path: Path) -> None:
    scene = make_scene().model_copy(
        update={"lines": [*make_scene().lines[:2], Line(id="l3", speaker="jun", text="Tom & Jerry <3")]}
    )
    clip = timed_clip(tmp_path / "scene.mp4", [("l1", 0.5, 2.25), ("l2", 2.5, 4.0), ("l3", 4.25, 3725.5)])
    path = write_webvtt(clip, scene, make_bible(), "zh-Hans")
    assert path == tmp_path / "scene.zh-Hans.vtt"
    assert path.read_text(encoding="utf-8") == (
        "WEBVTT\n\n"
        "l1\n00:00:00.500 --> 00:00:02.250\nRain on the rooftop. Mei waits.\n\n"
        "l2\n00:00:02.500 --> 00:00:04.000\n<v Mei Lin>You said it would be simple.\n\n"
        "l3\n00:00:04.250 --> 01:02:05.500\n<v Jun>Tom &amp; Jerry &lt;3\n"
    )


def test_webvtt_rejects_timings_of_another_scene(tmp_path: Path) -> None:
    clip = timed_clip(tmp_path / "x.mp4", [("elsewhere", 0.0, 1.0)])
    with pytest.raises(RenderError, match="elsewhere"):
        write_webvtt(clip, make_scene(), make_bible(), "en")


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> list[RenderedClip]:
    folder = tmp_path_factory.mktemp("episode")
    renderer = AnimaticRenderer()
    clips: list[RenderedClip] = []
    for index, place in enumerate(("rooftop garden at night", "harbour market at dawn")):
        scene: Scene = make_scene(place=place, scene_id=f"s{index}")
        previous = clips[-1].last_frame if clips else None
        output = folder / f"s{index}.mp4"
        request = RenderRequest(
            scene=scene, bible=make_bible(), profile=PROFILES["preview"], output=output, previous_frame=previous
        )
        clips.append(renderer.render(request))
    return clips


def test_episode_is_packaged_as_hls_fmp4(episode: list[RenderedClip], tmp_path: Path) -> None:
    playlist = package_hls([clip.path for clip in episode], tmp_path / "hls")
    assert playlist == tmp_path / "hls" / PLAYLIST
    text = playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-ENDLIST" in text
    assert '#EXT-X-MAP:URI="init.mp4"' in text
    segments = re.findall(r"^(segment-\d+\.m4s)$", text, flags=re.MULTILINE)
    assert len(segments) >= 4 and all((playlist.parent / name).stat().st_size > 0 for name in segments)
    lengths = [float(value) for value in re.findall(r"#EXTINF:([\d.]+),", text)]
    assert max(lengths) <= 2.6, "segments follow the clips' 2 s GOP"
    total = sum(clip.duration for clip in episode)
    assert sum(lengths) == pytest.approx(total, abs=0.2)
    probe = ffprobe(playlist)
    assert {stream["codec_name"] for stream in probe["streams"]} == {"h264", "aac"}
    assert float(probe["format"]["duration"]) == pytest.approx(total, abs=0.2)
    assert [path.name for path in tmp_path.iterdir()] == ["hls"], "no partial folder left behind"


def test_clips_of_different_profiles_do_not_mix(episode: list[RenderedClip], tmp_path: Path) -> None:
    other = tmp_path / "small.mp4"
    with Encoder(other, 90, 160, PROFILES["preview"].fps) as encoder:
        for _ in range(12):
            encoder.write_frame(np.zeros((160, 90, 3), dtype=np.uint8))
    with pytest.raises(RenderError, match="one profile"):
        package_hls([episode[0].path, other], tmp_path / "hls")
    assert not (tmp_path / "hls").exists()
