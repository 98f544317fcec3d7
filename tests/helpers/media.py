"""Checks on encoded clips with the real ffprobe, as a client that did not write them would do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


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
