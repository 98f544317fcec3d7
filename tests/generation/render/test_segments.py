"""A picture rendered as a stream of fragmented-MP4 segments: cut on its timeline, labelled, resumable anywhere."""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import c2pa
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.c2pa import ClipSigner, read_provenance
from reelfork.generation.render.diffusion import DiffusionRenderer
from reelfork.generation.render.dub import encode_aac
from reelfork.generation.render.dubbed_segments import AUDIO_TRACK, VIDEO_TRACK, audio_range, dubbed_segment
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.labels import AIGC_KEY, aigc_label, read_aigc
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import RenderRequest
from reelfork.generation.render.segments import (
    INIT,
    POSTER,
    SegmentPlan,
    boxes,
    decode_times,
    fragment_samples,
    segment_name,
    stored_segments,
    timescales,
    write_atomic,
)
from reelfork.generation.render.soundtrack import timeline_frames

from tests.helpers.media import assert_labelled
from tests.helpers.render import assert_badge_shown, atom_paths, make_bible, make_scene
from tests.helpers.tiny_ltx import TINY, build_tiny_ltx

PROFILE = PROFILES["preview"]
SLOTS = {"l1": 2.0, "l2": 1.5, "l3": 2.5}
FRAMES = 24  # 2 s at the preview's 12 fps


@dataclass(frozen=True)
class Rendered:
    folder: Path
    clip: Path
    signer: ClipSigner


def request(folder: Path, output: Path, start: int = 0) -> RenderRequest:
    return RenderRequest(
        scene=make_scene(), bible=make_bible(), profile=PROFILE, output=output, line_seconds=SLOTS, voice=False,
        segments=SegmentPlan(folder=folder, frames=FRAMES, start=start),
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    root = tmp_path_factory.mktemp("segments")
    signer = ClipSigner.development(root / "c2pa")
    AnimaticRenderer(signer=signer).render(request(root / "stream", root / "clip.mp4"))
    return Rendered(folder=root / "stream", clip=root / "clip.mp4", signer=signer)


def decoded(init: bytes, *segments: bytes) -> list[NDArray[np.uint8]]:
    with av.open(io.BytesIO(init + b"".join(segments)), "r", format="mp4") as container:
        return [np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8) for frame in container.decode(video=0)]


def test_segments_cut_the_planned_timeline_into_equal_parts(rendered: Rendered) -> None:
    total = timeline_frames(make_scene(), SLOTS, PROFILE.fps)
    count = stored_segments(rendered.folder)
    assert count == -(-total // FRAMES) > 2
    fragments = [(rendered.folder / segment_name(index)).read_bytes() for index in range(count)]
    lengths = [fragment_samples(fragment) for fragment in fragments]
    assert lengths == [FRAMES] * (count - 1) + [total - FRAMES * (count - 1)]
    ticks = next(iter(timescales((rendered.folder / INIT).read_bytes()).values())) // PROFILE.fps
    # Each segment's decode time is its place on the clip's timeline: players lay them end to end.
    assert [decode_times(fragment)[1] for fragment in fragments] == [index * FRAMES * ticks for index in range(count)]
    with av.open(str(rendered.clip)) as container:
        assert container.streams.video[0].frames == total


def test_the_init_segment_carries_the_aigc_label_and_the_first_segment_the_visible_mark(rendered: Rendered) -> None:
    init = (rendered.folder / INIT).read_bytes()
    assert [kind for kind, _, _ in boxes(init)] == [b"ftyp", b"moov"]
    assert "moov/udta/meta/ilst" in atom_paths(init)
    label = read_aigc(rendered.folder / INIT)
    assert label is not None and label.ContentProducer and label.ProduceID
    first = decoded(init, (rendered.folder / segment_name(0)).read_bytes())
    assert_badge_shown(first[PROFILE.fps // 2])
    # The poster is the first frame, mark included.
    with Image.open(rendered.folder / POSTER) as poster:
        assert poster.format == "JPEG" and poster.size == (PROFILE.width, PROFILE.height)
        assert_badge_shown(np.asarray(poster.convert("RGB"), dtype=np.uint8))


def test_the_joined_clip_keeps_its_full_labels(rendered: Rendered) -> None:
    assert_labelled(rendered.clip)


def test_a_render_resumed_at_a_segment_keeps_what_was_stored_and_continues_the_timeline(
    rendered: Rendered, tmp_path: Path
) -> None:
    folder = tmp_path / "stream"
    folder.mkdir()
    for name in (INIT, segment_name(0), segment_name(1)):
        shutil.copy2(rendered.folder / name, folder / name)
    kept = {name: (folder / name).stat().st_mtime_ns for name in (INIT, segment_name(0), segment_name(1))}
    AnimaticRenderer(signer=rendered.signer).render(request(folder, tmp_path / "clip.mp4", start=2))
    assert {name: (folder / name).stat().st_mtime_ns for name in kept} == kept  # not written again
    count = stored_segments(rendered.folder)
    assert stored_segments(folder) == count
    for index in range(2, count):
        resumed, whole = ((f / segment_name(index)).read_bytes() for f in (folder, rendered.folder))
        assert fragment_samples(resumed) == fragment_samples(whole)
        assert decode_times(resumed) == decode_times(whole)
    # The same pictures: a segment started on another worker decodes as the one rendered in a row.
    init = (folder / INIT).read_bytes()
    again = decoded(init, *((folder / segment_name(index)).read_bytes() for index in range(count)))
    before = decoded(init, *((rendered.folder / segment_name(index)).read_bytes() for index in range(count)))
    assert len(again) == len(before)
    assert max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(again, before, strict=True)) < 2.0
    assert_labelled(tmp_path / "clip.mp4")


def test_a_viewers_segment_adds_their_voice_and_a_signed_labelled_init(rendered: Rendered, tmp_path: Path) -> None:
    fps = PROFILE.fps
    voice = encode_aac(np.sin(np.arange(SAMPLE_RATE * 3, dtype=np.float32) / 9).astype(np.float32) * 0.3)
    start, end = audio_range(FRAMES, FRAMES, fps)  # segment 1
    audio = [(pts, data) for pts, data in voice if start <= pts < end]
    label = aigc_label("viewer-stream").to_json()
    init, fragment = dubbed_segment(
        (rendered.folder / INIT).read_bytes(), (rendered.folder / segment_name(1)).read_bytes(), FRAMES, fps, audio,
        "en", {AIGC_KEY: label},
    )
    scales = timescales(init)
    assert decode_times(fragment) == {
        VIDEO_TRACK: FRAMES * scales[VIDEO_TRACK] // fps, AUDIO_TRACK: audio[0][0] * scales[AUDIO_TRACK] // SAMPLE_RATE
    }
    assert fragment_samples(fragment, VIDEO_TRACK) == FRAMES and fragment_samples(fragment, AUDIO_TRACK) == len(audio)
    write_atomic(tmp_path / INIT, init, rendered.signer)
    (tmp_path / "1.m4s").write_bytes(fragment)
    label_read = read_aigc(tmp_path / INIT)
    assert label_read is not None and label_read.ProduceID == "viewer-stream"
    # What C2PA covers of a stream: the init segment, valid as an asset of its own, saying a model created it.
    provenance = read_provenance(tmp_path / INIT)
    assert provenance is not None and provenance.valid and provenance.created_by_ai, provenance
    # Not the media segments: c2pa-python 0.38.1 cannot sign fragmented MP4, and its reader says so when given one.
    with (tmp_path / INIT).open("rb") as first, (tmp_path / INIT).open("rb") as again, (tmp_path / "1.m4s").open(
        "rb"
    ) as segment, c2pa.Reader("video/mp4", first) as reader:
        reader.with_fragment("video/mp4", again, segment)
        failures = [item["code"] for item in (reader.get_validation_results() or {})["activeManifest"]["failure"]]
    assert "assertion.bmffHash.mismatch" in failures
    with av.open(io.BytesIO((tmp_path / INIT).read_bytes() + fragment), "r", format="mp4") as container:
        kinds = sorted(stream.type for stream in container.streams)
        assert kinds == ["audio", "video"]
        assert sum(1 for _ in container.decode(audio=0)) > 0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers.*")
def test_the_diffusion_renderer_streams_its_footage_in_the_same_segments(tmp_path: Path) -> None:
    """Its pipeline calls are one thing (each conditioned on the last frame), the stream's segments another: the
    encoder cuts the footage on the clip's timeline, whatever the pipeline's segment length."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    build_tiny_ltx(tmp_path / "model")
    signer = ClipSigner.development(tmp_path / "c2pa")
    scene = make_scene()
    frames = TINY.fps  # 1 s segments
    rendered = DiffusionRenderer(tmp_path / "model", signer=signer).render(
        RenderRequest(scene=scene, bible=make_bible(), profile=TINY, output=tmp_path / "clip.mp4", line_seconds=SLOTS,
                      voice=False, segments=SegmentPlan(folder=tmp_path / "stream", frames=frames))
    )
    total = timeline_frames(scene, SLOTS, TINY.fps)
    count = stored_segments(tmp_path / "stream")
    assert count == -(-total // frames)
    assert sum(fragment_samples((tmp_path / "stream" / segment_name(n)).read_bytes()) for n in range(count)) == total
    assert read_aigc(tmp_path / "stream" / INIT) is not None
    assert_labelled(rendered.path)
