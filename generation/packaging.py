"""Delivery formats around the MP4 clips: WebVTT subtitles per locale, and HLS (fMP4) for an episode.

Subtitles come from the clip's own line timings, so they match the voice of the
locale the clip was rendered in. An episode of several clips of one profile is
remuxed, not re-encoded, into one HLS stream: the clips' fixed 2-second GOP gives
regular segments, and the whole remux takes milliseconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from generation.rendering import Clip, RenderError
from narrative.story import NARRATOR, Bible, Scene

log = logging.getLogger(__name__)

SEGMENT_SECONDS = 2
"""HLS segment target; the encoder's GOP is 2 s, so segments cut on keyframes at this length."""
PLAYLIST = "episode.m3u8"


# --- WebVTT ---------------------------------------------------------------------------------------


def vtt_timestamp(seconds: float) -> str:
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def vtt_text(text: str) -> str:
    """Cue text: markup characters escaped, and no blank line (which would end the cue)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join(line for line in escaped.splitlines() if line.strip()) or " "


def webvtt(clip: Clip, scene: Scene, bible: Bible) -> str:
    """One cue per line, timed by the clip; a character's line is tagged with its speaker (``<v Name>``)."""
    lines = {line.id: line for line in scene.lines}
    cues = ["WEBVTT", ""]
    for timing in clip.timings:
        line = lines.get(timing.line_id)
        if line is None:
            raise RenderError(f"clip {clip.path.name} has line {timing.line_id!r}, which scene {scene.id!r} lacks")
        text = vtt_text(line.text)
        if line.speaker != NARRATOR:
            text = f"<v {vtt_text(bible.character(line.speaker).name)}>{text}"
        cues += [line.id, f"{vtt_timestamp(timing.start)} --> {vtt_timestamp(timing.end)}", text, ""]
    return "\n".join(cues)


def write_webvtt(clip: Clip, scene: Scene, bible: Bible, locale: str) -> Path:
    """Write ``<stem>.<locale>.vtt`` beside the clip; ``scene`` is the scene in that locale."""
    path = clip.path.with_name(f"{clip.path.stem}.{locale}.vtt")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}")
    temporary.write_text(webvtt(clip, scene, bible), encoding="utf-8")
    os.replace(temporary, path)
    return path


# --- HLS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamShape:
    """What must match for clips to share one HLS stream: codecs, picture size, frame and sample rates."""

    video: tuple[str, int, int, Fraction | None]
    audio: tuple[str, int, int]

    @classmethod
    def of(cls, container: av.container.InputContainer) -> StreamShape:
        video, audio = container.streams.video[0], container.streams.audio[0]
        return cls(
            video=(video.codec_context.name, video.width, video.height, video.average_rate),
            audio=(audio.codec_context.name, audio.sample_rate, audio.channels),
        )


def package_hls(clips: list[Path], folder: Path, segment_seconds: int = SEGMENT_SECONDS) -> Path:
    """Remux the clips, in order, into ``folder/episode.m3u8`` with fMP4 segments (VOD); returns the playlist.

    The folder is built beside its final place and renamed into it, so a player never finds
    a playlist whose segments are still being written. Every clip must come from one profile.
    """
    if not clips:
        raise RenderError("an HLS episode needs at least one clip")
    building = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.partial")
    building.mkdir(parents=True)
    try:
        remux(clips, building, segment_seconds)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder / PLAYLIST


def remux(clips: list[Path], folder: Path, segment_seconds: int) -> None:
    """Concatenate the clips' packets on one timeline: each clip starts where the previous one ended.

    A clip's AAC stream opens with a priming packet timed before zero; after the first clip it would
    overlap the previous clip's last packet, so it is dropped (a muxer needs rising timestamps)."""
    options = {
        "hls_time": str(segment_seconds),
        "hls_segment_type": "fmp4",
        "hls_playlist_type": "vod",
        "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(folder / "segment-%05d.m4s"),
    }
    with av.open(str(folder / PLAYLIST), "w", format="hls", options=options) as output:
        shape: StreamShape | None = None
        outputs: dict[int, av.stream.Stream] = {}
        last_dts: dict[int, int] = {}
        offset = 0.0
        for path in clips:
            with av.open(str(path)) as clip:
                if shape is None:
                    shape = StreamShape.of(clip)
                    for stream in (clip.streams.video[0], clip.streams.audio[0]):
                        outputs[stream.index] = output.add_stream_from_template(stream)
                elif StreamShape.of(clip) != shape:
                    raise RenderError(
                        f"{path.name} is {StreamShape.of(clip)}, but the episode's first clip is {shape}: "
                        f"render every clip of an episode with one profile"
                    )
                end = offset
                for packet in clip.demux(*(clip.streams[index] for index in outputs)):
                    if packet.dts is None or packet.pts is None:
                        continue  # the demuxer's end-of-stream marker
                    index, time_base = packet.stream.index, packet.time_base
                    shift = round(offset / time_base)
                    packet.pts += shift
                    packet.dts += shift
                    if index in last_dts and packet.dts <= last_dts[index]:
                        log.debug("dropping an overlapping packet of %s at %s", path.name, packet.dts * time_base)
                        continue
                    last_dts[index] = packet.dts
                    end = max(end, float((packet.pts + (packet.duration or 0)) * time_base))
                    packet.stream = outputs[index]
                    output.mux(packet)
                offset = end
