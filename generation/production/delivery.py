"""Delivery formats around the MP4 clips: WebVTT subtitles per locale, HLS (fMP4) for an episode, and an
episode's MP4 per locale (the shared picture, the locale's voice, a subtitle track per locale).

Subtitles come from the clip's own line timings, so they match the voice of the
locale the clip was rendered in. An episode of several clips of one profile is
remuxed, not re-encoded, into one HLS stream: the clips' fixed 2-second GOP gives
regular segments, and the whole remux takes milliseconds.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import uuid
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from reelfork.generation.render.request import RenderedClip, RenderError
from reelfork.generation.render.voice import iso_639_2
from reelfork.narrative.story import NARRATOR, Bible, Scene

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


Cue = tuple[str, float, float, str, str]
"""One subtitle: identifier (a line ID), start and end seconds, the speaker's name ("" for the narrator), text."""


def webvtt_text(cues: list[Cue]) -> str:
    """A WebVTT file; a character's line is tagged with its speaker (``<v Name>``)."""
    out = ["WEBVTT", ""]
    for identifier, start, end, speaker, text in cues:
        body = vtt_text(text)
        if speaker:
            body = f"<v {vtt_text(speaker)}>{body}"
        out += [identifier, f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}", body, ""]
    return "\n".join(out)


def speaker_name(speaker: str, bible: Bible) -> str:
    return "" if speaker == NARRATOR else bible.character(speaker).name


def webvtt(clip: RenderedClip, scene: Scene, bible: Bible) -> str:
    """One cue per line, timed by the clip."""
    lines = {line.id: line for line in scene.lines}
    cues: list[Cue] = []
    for timing in clip.timings:
        line = lines.get(timing.line_id)
        if line is None:
            raise RenderError(f"clip {clip.path.name} has line {timing.line_id!r}, which scene {scene.id!r} lacks")
        cues.append((line.id, timing.start, timing.end, speaker_name(line.speaker, bible), line.text))
    return webvtt_text(cues)


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` under a temporary name and rename it into place: no reader sees half a file."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_webvtt(clip: RenderedClip, scene: Scene, bible: Bible, locale: str) -> Path:
    """Write ``<stem>.<locale>.vtt`` beside the clip; ``scene`` is the scene in that locale."""
    path = clip.path.with_name(f"{clip.path.stem}.{locale}.vtt")
    replace_text(path, webvtt(clip, scene, bible))
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
    options = {
        "hls_time": str(segment_seconds),
        "hls_segment_type": "fmp4",
        "hls_playlist_type": "vod",
        "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(folder / "segment-%05d.m4s"),
    }
    with av.open(str(folder / PLAYLIST), "w", format="hls", options=options) as output:
        concatenate(clips, output, audio=True)


def concatenate_video(clips: list[Path], output: Path) -> None:
    """The clips' pictures, without their sound, remuxed (not re-encoded) into one MP4."""
    with av.open(str(output), "w", format="mp4") as container:
        concatenate(clips, container, audio=False)


def concatenate(clips: list[Path], output: av.container.OutputContainer, audio: bool) -> None:
    """Concatenate the clips' packets on one timeline: each clip starts where the previous one ended.

    A clip's AAC stream opens with a priming packet timed before zero; after the first clip it would
    overlap the previous clip's last packet, so it is dropped (a muxer needs rising timestamps)."""
    shape: StreamShape | None = None
    outputs: dict[int, av.stream.Stream] = {}
    last_dts: dict[int, int] = {}
    offset = 0.0
    for path in clips:
        with av.open(str(path)) as clip:
            if shape is None:
                shape = StreamShape.of(clip)
                streams = [clip.streams.video[0], *([clip.streams.audio[0]] if audio else [])]
                for stream in streams:
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


def clip_offsets(clips: list[Path]) -> tuple[list[float], float]:
    """Where each clip's picture starts when they are concatenated, and the total length: frames over frame rate."""
    offsets: list[float] = []
    position = 0.0
    for clip in clips:
        offsets.append(position)
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            frames = stream.frames or sum(1 for _ in container.demux(stream)) - 1
            rate = float(stream.average_rate or 24)
        position += frames / rate
    return offsets, position


# --- an episode MP4 per locale --------------------------------------------------------------------

def write_wav(path: Path, track: NDArray[np.float32], sample_rate: int) -> None:
    pcm = (np.clip(track, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(sample_rate)
        file.writeframes(pcm.tobytes())


def mux_episode(
    picture: Path, voice: Path, locale: str, subtitles: dict[str, Path], metadata: dict[str, str], output: Path
) -> None:
    """The episode MP4: the shared picture (copied), the locale's voice (AAC), one subtitle track per locale
    (``mov_text``, tagged with its language, the episode's own first and default), and the metadata.

    The ffmpeg command does this one mux: it writes ``mov_text`` subtitle tracks, which PyAV does not encode."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RenderError("ffmpeg not found; install it (Debian: apt-get install ffmpeg)")
    ordered = [locale, *(other for other in subtitles if other != locale)]
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(picture), "-i", str(voice)]
    for other in ordered:
        command += ["-i", str(subtitles[other])]
    command += ["-map", "0:v", "-map", "1:a"]
    for index in range(len(ordered)):
        command += ["-map", f"{index + 2}:s"]
    command += ["-c:v", "copy", "-c:a", "aac", "-b:a", "96k", "-c:s", "mov_text"]
    command += ["-metadata:s:a:0", f"language={iso_639_2(locale)}"]
    for index, other in enumerate(ordered):
        command += [f"-metadata:s:s:{index}", f"language={iso_639_2(other)}"]
        command += [f"-disposition:s:{index}", "default" if index == 0 else "0"]
    for key, value in metadata.items():
        command += ["-metadata", f"{key}={value}"]
    command += ["-movflags", "+faststart+use_metadata_tags", str(output)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        message = result.stderr.strip()
        if "No space left" in message:
            raise OSError(errno.ENOSPC, "No space left on device", str(output))
        raise RenderError(f"ffmpeg could not assemble {output.name}: {message[-400:]}")
