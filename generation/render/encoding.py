"""MP4 encoding with PyAV: H.264 + AAC, fast start, container metadata, atomic output.

The file is written under a temporary name in the output's folder and renamed
into place on success, so a reader never sees a half-written clip. A
:class:`FileSigner` (C2PA) signs that temporary file into a second temporary
one before the rename: a reader never sees an unsigned or half-signed clip either.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream
from numpy.typing import NDArray
from reelfork.generation.render.drawing import Frame, Picture
from reelfork.generation.render.labels import LikenessRelease

SAMPLE_RATE = 24_000
PRESET = "ultrafast"


class FileSigner(Protocol):
    def sign(
        self, source: Path, destination: Path, title: str, likenesses: Sequence[LikenessRelease] = ()
    ) -> None:
        """Write ``source`` with a signed manifest embedded to ``destination``; ``title`` is the published name,
        ``likenesses`` the releases of the licensed likenesses it shows."""
        ...


FAST_START = {"movflags": "+faststart+use_metadata_tags"}
"""MP4 options: the index first (plays while downloading); custom keys (AIGC) kept as ``moov/udta/meta`` items."""


def partial_path(path: Path) -> Path:
    """A unique temporary name for ``path`` in its folder (the final rename is atomic, concurrent makers never
    collide), keeping its suffix (a signer tells the media type by it)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.partial{path.suffix}")


def put_in_place(
    temporary: Path,
    path: Path,
    signer: FileSigner | None,
    title: str | None = None,
    likenesses: Sequence[LikenessRelease] = (),
) -> float:
    """Move the finished file at ``temporary`` (a :func:`partial_path`) to ``path``, signed by ``signer`` on the way
    (``title``: the published name, default the file's); the seconds signing took. Neither the temporary file nor
    the signed copy is left behind, whatever happens."""
    signed = temporary.with_name(temporary.name.replace(".partial", ".signed", 1))
    try:
        if signer is None:
            os.replace(temporary, path)
            return 0.0
        started = time.perf_counter()
        signer.sign(temporary, signed, title=title or path.name, likenesses=likenesses)
        os.replace(signed, path)
        return time.perf_counter() - started
    finally:
        temporary.unlink(missing_ok=True)
        signed.unlink(missing_ok=True)


def video_like(source: InputContainer, container: OutputContainer, metadata: dict[str, str]) -> VideoStream:
    """``metadata`` onto ``container`` and a video stream like ``source``'s, for :func:`copy_video` (add any other
    stream before that: no stream can be added once packets are written)."""
    for key, value in metadata.items():
        container.metadata[key] = value
    return container.add_stream_from_template(source.streams.video[0])


def copy_video(source: InputContainer, container: OutputContainer, video: VideoStream) -> None:
    """``source``'s video packets into ``container``'s ``video`` stream (:func:`video_like`), never re-encoded."""
    for packet in source.demux(source.streams.video[0]):
        if packet.dts is None:
            continue
        packet.stream = video
        container.mux(packet)


class Encoder:
    """Frames and audio in, an MP4 at ``path`` out. Use as a context manager.

    Audio is interleaved with video as it goes (``write_frame`` pushes the audio
    up to that frame's end time), so players can start before the whole file
    has downloaded.
    """

    first_frame = 0
    """The first frame encoded (a :class:`~reelfork.generation.render.segments.SegmentedEncoder` may start later)."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: int,
        metadata: dict[str, str] | None = None,
        sample_rate: int = SAMPLE_RATE,
        preset: str = PRESET,
        threads: int = 1,
        signer: FileSigner | None = None,
        audio: bool = True,
        likenesses: Sequence[LikenessRelease] = (),
    ) -> None:
        self.path = path
        self.likenesses = likenesses
        self.fps = fps
        self.sample_rate = sample_rate
        self.signer = signer
        self.signing_seconds = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = partial_path(path)
        try:
            self._open(width, height, metadata or {}, preset, threads, audio)
        except BaseException:
            self.temporary.unlink(missing_ok=True)
            raise
        self.frames = 0
        self.pending: list[NDArray[np.float32]] = []
        self.pending_samples = 0
        self.samples_written = 0
        self.last: av.VideoFrame | None = None
        self.closed = False

    def _open(self, width: int, height: int, metadata: dict[str, str], preset: str, threads: int, audio: bool) -> None:
        self.container: OutputContainer = av.open(str(self.temporary), "w", format="mp4", options=FAST_START)
        for key, value in metadata.items():
            self.container.metadata[key] = value
        self.video: VideoStream = self.container.add_stream(
            "libx264",
            rate=self.fps,
            # A fixed GOP (2 s, no scene-cut keyframes) so the clip can be cut into regular HLS segments.
            options={"preset": preset, "g": str(2 * self.fps), "sc_threshold": "0", "threads": str(threads)},
        )
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.audio: AudioStream | None = None
        """None: a video-only file (``add_audio`` is ignored)."""
        if audio:
            self.audio = self.container.add_stream("aac", rate=self.sample_rate, layout="mono")

    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.closed:
            return
        if kind is None:
            self.close()
        else:
            self.abort()

    def add_audio(self, samples: NDArray[np.float32]) -> None:
        """Queue mono samples in [-1, 1]; they are encoded as the video catches up."""
        if len(samples) and self.audio is not None:
            self.pending.append(samples.astype(np.float32, copy=False))
            self.pending_samples += len(samples)

    def write_frame(self, frame: Frame | Picture | None) -> None:
        """Encode one frame: RGB (``h x w x 3``, converted here) or yuv420p (``h * 3 / 2 x w``,
        as is); ``None`` repeats the previous frame."""
        if frame is not None and frame.ndim == 3:
            self.last = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        elif frame is not None:
            self.last = av.VideoFrame.from_ndarray(frame, format="yuv420p")
        if self.last is None:
            raise ValueError("the first frame cannot be a repeat")
        self.last.pts = self.frames
        self.frames += 1
        for packet in self.video.encode(self.last):
            self.container.mux(packet)
        self._flush_audio(self.frames * self.sample_rate // self.fps)

    def close(self) -> Path:
        """Finish the file (audio padded or cut to the video's length) and move it into place."""
        if self.audio is not None:
            target = self.frames * self.sample_rate // self.fps
            missing = target - self.samples_written - self.pending_samples
            if missing > 0:
                self.add_audio(np.zeros(missing, dtype=np.float32))
            self._flush_audio(target)
            for packet in self.audio.encode(None):
                self.container.mux(packet)
        for packet in self.video.encode(None):
            self.container.mux(packet)
        self.container.close()
        self.closed = True
        self.signing_seconds = put_in_place(self.temporary, self.path, self.signer, likenesses=self.likenesses)
        return self.path

    def abort(self) -> None:
        self.closed = True
        try:
            self.container.close()
        finally:
            self.temporary.unlink(missing_ok=True)

    def _flush_audio(self, until: int) -> None:
        count = until - self.samples_written
        if count <= 0 or self.pending_samples == 0 or self.audio is None:
            return
        queued = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        chunk, rest = queued[:count], queued[count:]
        self.pending = [rest] if len(rest) else []
        self.pending_samples = len(rest)
        audio = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        audio.sample_rate = self.sample_rate
        audio.pts = self.samples_written
        self.samples_written += len(chunk)
        for packet in self.audio.encode(audio):
            self.container.mux(packet)
