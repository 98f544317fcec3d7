"""Checks on encoded clips with the real ffprobe, as a client that did not write them would do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray


def probe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def assert_vertical_h264_aac(path: Path) -> float:
    """Assert the file is H.264 video at 9:16 with AAC audio and a positive duration; return the duration."""
    info = probe(path)
    codecs = {stream["codec_type"]: stream for stream in info["streams"]}
    assert codecs["video"]["codec_name"] == "h264", info
    assert codecs["audio"]["codec_name"] == "aac", info
    width, height = int(codecs["video"]["width"]), int(codecs["video"]["height"])
    assert width * 16 == height * 9, (width, height)
    duration = float(info["format"]["duration"])
    assert duration > 0
    return duration


def assert_labelled(path: Path) -> None:
    """The implicit AIGC label parses and the C2PA manifest validates as AI-created."""
    from reelfork.generation.render.c2pa import read_provenance
    from reelfork.generation.render.labels import read_aigc

    assert read_aigc(path) is not None, f"{path.name} has no AIGC label"
    provenance = read_provenance(path)
    assert provenance is not None and provenance.valid and provenance.created_by_ai, provenance


def motion_and_loudness(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per frame after the first: the change of the whole picture (mean absolute difference of consecutive
    decoded luma frames) and the audio's loudness over that frame's time (RMS), decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 24)
        frames = [frame.to_ndarray(format="gray").astype(np.int16) for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate or 24_000
        audio = np.concatenate([frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)])
    per_frame = rate / fps
    motion = np.array([np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, len(frames))], dtype=np.float64)
    loudness = np.zeros(len(motion), dtype=np.float64)
    for i in range(1, len(frames)):
        window = audio[int(i * per_frame) : int((i + 1) * per_frame)]
        loudness[i - 1] = float(np.sqrt(np.mean(window.astype(np.float64) ** 2))) if len(window) else 0.0
    return motion, loudness


def lips_follow_voice(path: Path) -> float:
    """Pearson's correlation of :func:`motion_and_loudness` over a clip."""
    motion, loudness = motion_and_loudness(path)
    return float(np.corrcoef(motion, loudness)[0, 1])
