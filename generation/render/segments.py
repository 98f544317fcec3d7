"""A clip as a stream of segments: fragmented MP4 (CMAF-style), one init segment and one fragment per segment.

The encoder cuts on its own timeline: every ``frames`` frames start with a keyframe (a closed GOP), and the
MP4 muxer in fragmented mode (``frag_keyframe+empty_moov+default_base_moof``) writes one ``moof``+``mdat``
pair per keyframe. The bytes it writes are split on box boundaries as they come (:class:`Fragments`), so a
segment is stored (``<index>.m4s``, written under a temporary name and renamed) as soon as its last frame is
encoded, and the ``ftyp``+``moov`` before the first one is the init segment (``init.mp4``), which carries
the container metadata: the implicit ``AIGC`` label.

A render can start at any segment (:attr:`SegmentPlan.start`): the frames before it are counted, not drawn
or encoded, and the fragments' decode times (``tfdt``) are set from the segment's first frame, so a stream
resumed on another worker continues the timeline exactly. When the last segment is stored, the segments are
joined into one ordinary MP4 (remuxed, never re-encoded), which is signed like any clip. A render can also stop
after a given segment (:attr:`SegmentPlan.through`): the encoder raises :class:`StreamPaused` once that one is
stored, before drawing more, and a later render resumes after it.

C2PA on streams, exactly: c2pa-python 0.38.1 signs whole files only (``Builder.sign``); the C2PA 2.x signing of
fragmented MP4 (a ``c2pa.hash.bmff`` Merkle tree over the fragments, c2pa-rs's ``sign_fragmented_files``) is not
exposed, though its ``Reader.with_fragment`` reads such manifests. So what a viewer's stream carries is a manifest
in its init segment that hard-binds that segment alone (its codec setup and the ``AIGC`` label) as a standalone
asset, and says the content was created by a trained model; the media segments are not covered (a reader given
init + fragment reports the flat hash as wrong for a fragmented asset). The finished MP4 keeps its full manifest.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import av
from av.container import OutputContainer
from av.video.stream import VideoStream
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from reelfork.generation.render.drawing import Frame, Picture
from reelfork.generation.render.encoding import (
    FAST_START,
    PRESET,
    FileSigner,
    copy_video,
    partial_path,
    put_in_place,
    video_like,
)
from reelfork.generation.render.labels import LikenessRelease

INIT = "init.mp4"
POSTER = "poster.jpg"
"""The clip's first frame, beside its segments: what a player shows before it plays."""
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof+use_metadata_tags"


class SegmentPlan(BaseModel):
    """Where a render's segments go and which it encodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: Path
    """The clip's segments: ``init.mp4`` and ``<index>.m4s`` (:func:`segment_name`)."""
    frames: int = Field(ge=1)
    """Frames per segment; the last one may be shorter."""
    start: int = Field(default=0, ge=0)
    """The first segment to encode: those before it are stored already (a resumed render)."""
    through: int | None = Field(default=None, ge=0)
    """The last segment to store before stopping (:class:`StreamPaused`), the clip unfinished; None: all of them."""


class StreamPaused(Exception):
    """The render stored the last segment its plan asked for (:attr:`SegmentPlan.through`) and stopped there."""


def segment_name(index: int) -> str:
    return f"{index}.m4s"


def stored_segments(folder: Path) -> int:
    """How many segments in a row, from the first, are stored in ``folder``."""
    count = 0
    while (folder / segment_name(count)).exists():
        count += 1
    return count


# -- boxes ------------------------------------------------------------------------------------------


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """The ISO BMFF boxes in ``data[start:end]``: (type, offset, size)."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size < 8:
            raise ValueError(f"bad box size {size} at {start}")
        yield kind, start, size
        start += size


def child(data: bytes, offset: int, size: int, kind: bytes, header: int = 8) -> tuple[int, int] | None:
    """The first ``kind`` box inside the box at ``offset``: (offset, size)."""
    for found, at, length in boxes(data, offset + header, offset + size):
        if found == kind:
            return at, length
    return None


def timescales(init: bytes) -> dict[int, int]:
    """Track ID → media timescale, from an init segment's ``moov``."""
    found: dict[int, int] = {}
    for kind, offset, size in boxes(init):
        if kind != b"moov":
            continue
        for trak_kind, trak, trak_size in boxes(init, offset + 8, offset + size):
            if trak_kind != b"trak":
                continue
            tkhd = child(init, trak, trak_size, b"tkhd")
            mdia = child(init, trak, trak_size, b"mdia")
            mdhd = child(init, *mdia, b"mdhd") if mdia is not None else None
            if tkhd is None or mdhd is None:
                continue
            version = init[tkhd[0] + 8]
            track = struct.unpack(">I", init[tkhd[0] + (28 if version else 20) : tkhd[0] + (32 if version else 24)])[0]
            version = init[mdhd[0] + 8]
            at = mdhd[0] + (28 if version else 20)
            found[track] = struct.unpack(">I", init[at : at + 4])[0]
    return found


def trafs(fragment: bytes) -> Iterator[tuple[int, int, int]]:
    """Each track fragment of a ``moof``: (track ID, traf offset, traf size)."""
    for kind, offset, size in boxes(fragment):
        if kind != b"moof":
            continue
        for traf_kind, traf, traf_size in boxes(fragment, offset + 8, offset + size):
            if traf_kind == b"traf":
                tfhd = child(fragment, traf, traf_size, b"tfhd")
                if tfhd is not None:
                    yield struct.unpack(">I", fragment[tfhd[0] + 12 : tfhd[0] + 16])[0], traf, traf_size


def fragment_samples(fragment: bytes, track: int | None = None) -> int:
    """Samples (frames) in a fragment's ``trun`` boxes, of one track or of all."""
    count = 0
    for found, traf, size in trafs(fragment):
        if track is None or found == track:
            for kind, offset, _ in boxes(fragment, traf + 8, traf + size):
                if kind == b"trun":
                    count += struct.unpack(">I", fragment[offset + 12 : offset + 16])[0]
    return count


def decode_times(fragment: bytes) -> dict[int, int]:
    """Track ID → the base media decode time (``tfdt``) of each track in a fragment."""
    found: dict[int, int] = {}
    for track, traf, size in trafs(fragment):
        tfdt = child(fragment, traf, size, b"tfdt")
        if tfdt is not None:
            wide = fragment[tfdt[0] + 8]
            at = tfdt[0] + 12
            found[track] = struct.unpack(">Q" if wide else ">I", fragment[at : at + (8 if wide else 4)])[0]
    return found


def with_decode_times(fragment: bytes, times: dict[int, int]) -> bytes:
    """``fragment`` with each listed track's ``tfdt`` (base media decode time) set: track ID → time."""
    patched = bytearray(fragment)
    for track, traf, size in trafs(fragment):
        tfdt = child(fragment, traf, size, b"tfdt")
        if tfdt is None or track not in times:
            continue
        at = tfdt[0] + 12
        if fragment[tfdt[0] + 8]:
            patched[at : at + 8] = struct.pack(">Q", times[track])
        else:
            patched[at : at + 4] = struct.pack(">I", times[track])
    return bytes(patched)


class Fragments(io.RawIOBase):
    """A write-only stream that hands back whole top-level boxes: ``take`` returns those complete so far."""

    def __init__(self) -> None:
        super().__init__()
        self.pending = bytearray()
        self.complete: list[tuple[bytes, bytes]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.pending += data
        while len(self.pending) >= 8:
            size, kind = struct.unpack(">I4s", self.pending[:8])
            if len(self.pending) < size:
                break
            self.complete.append((kind, bytes(self.pending[:size])))
            del self.pending[:size]
        return len(data)

    def take(self) -> list[tuple[bytes, bytes]]:
        taken, self.complete = self.complete, []
        return taken


def write_atomic(path: Path, data: bytes, signer: FileSigner | None = None) -> None:
    """Write ``data`` to ``path`` under a temporary name, renamed into place; signed (C2PA) on the way when a signer
    is given (an init segment: see :func:`signed_init`)."""
    temporary = partial_path(path)
    try:
        temporary.write_bytes(data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    put_in_place(temporary, path, signer)


class SegmentedEncoder:
    """Frames in, segments out (see the module's doc); ``close`` joins them into the clip's MP4 at ``path``.

    The same face as :class:`~reelfork.generation.render.encoding.Encoder` for a picture without sound:
    ``write_frame``, ``frames``, ``close``, ``abort``. ``first_frame`` is the first frame it encodes; a
    renderer need not draw the frames before it (``write_frame(None)`` counts one).
    """

    def __init__(
        self,
        path: Path,
        plan: SegmentPlan,
        width: int,
        height: int,
        fps: int,
        metadata: dict[str, str] | None = None,
        preset: str = PRESET,
        threads: int = 1,
        signer: FileSigner | None = None,
        likenesses: Sequence[LikenessRelease] = (),
    ) -> None:
        self.path = path
        self.plan = plan
        self.fps = fps
        self.signer = signer
        self.likenesses = likenesses
        """The releases of the licensed likenesses the clip shows, declared in its C2PA manifest."""
        self.signing_seconds = 0.0
        self.first_frame = plan.start * plan.frames
        self.frames = 0
        self.index = plan.start
        """The segment the next fragment holds."""
        self.last: av.VideoFrame | None = None
        self.closed = False
        plan.folder.mkdir(parents=True, exist_ok=True)
        self.sink = Fragments()
        self.metadata = metadata or {}
        self.container: OutputContainer = av.open(
            self.sink, "w", format="mp4", options={"movflags": FRAGMENTED, "flush_packets": "1"}
        )
        for key, value in self.metadata.items():
            self.container.metadata[key] = value
        frames = str(plan.frames)
        # zerolatency: a frame's packet comes out with it, so a segment is stored as soon as the next one starts.
        options = {"preset": preset, "tune": "zerolatency", "g": frames, "keyint_min": frames, "sc_threshold": "0",
                   "threads": str(threads)}
        self.video: VideoStream = self.container.add_stream("libx264", rate=fps, options=options)
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.ticks: int | None = None
        """Video timescale ticks per frame, read from the init segment."""

    def __enter__(self) -> SegmentedEncoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self.closed:
            self.close() if kind is None else self.abort()

    def add_audio(self, samples: object) -> None:
        """A segmented picture has no sound (each viewer's voice is laid on it): samples are ignored."""

    def write_frame(self, frame: Frame | Picture | None) -> None:
        if self.frames < self.first_frame:
            self.frames += 1  # stored already: counted, not encoded
            return
        if frame is not None and frame.ndim == 3:
            self.last = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        elif frame is not None:
            self.last = av.VideoFrame.from_ndarray(frame, format="yuv420p")
        if self.last is None:
            raise ValueError("the first frame encoded cannot be a repeat")
        self.last.pts = self.frames
        if self.frames == 0:
            self._poster(self.last)
        if self.frames % self.plan.frames == 0:
            self.last.pict_type = av.video.frame.PictureType.I
        else:
            self.last.pict_type = av.video.frame.PictureType.NONE
        self.frames += 1
        for packet in self.video.encode(self.last):
            self.container.mux(packet)
        self._store()

    def _poster(self, frame: av.VideoFrame) -> None:
        encoded = io.BytesIO()
        Image.fromarray(frame.to_ndarray(format="rgb24")).save(encoded, format="JPEG", quality=85)
        write_atomic(self.plan.folder / POSTER, encoded.getvalue())

    def _store(self) -> None:
        for kind, data in self.sink.take():
            if kind == b"ftyp":
                self.init = data
            elif kind == b"moov":
                self.init += data
                self.ticks = next(iter(timescales(self.init).values())) // self.fps
                if not (self.plan.folder / INIT).exists():
                    write_atomic(self.plan.folder / INIT, self.init)
            elif kind == b"moof":
                self.moof = data
            elif kind == b"mdat":
                assert self.ticks is not None
                fragment = self.moof + data
                first = self.index * self.plan.frames
                fragment = with_decode_times(fragment, {track: first * self.ticks for track, _, _ in trafs(fragment)})
                path = self.plan.folder / segment_name(self.index)
                if not path.exists():  # stored already (by a render killed before it was recorded): kept as is
                    write_atomic(path, fragment)
                self.index += 1
                through = self.plan.through
                if through is not None and self.index > through and not self.closed:
                    raise StreamPaused(f"segments {self.plan.start} to {through} stored")

    def close(self) -> Path:
        """Store the last segment, then join every segment into the MP4 at ``path`` (signed when a signer is set)."""
        if self.frames > self.first_frame:
            for packet in self.video.encode(None):
                self.container.mux(packet)
        self.container.close()
        self.closed = True
        self._store()
        self.signing_seconds = join(self.plan.folder, self.path, self.metadata, self.signer, self.likenesses)
        return self.path

    def abort(self) -> None:
        self.closed = True
        self.container.close()


def join(
    folder: Path, output: Path, metadata: dict[str, str], signer: FileSigner | None,
    likenesses: Sequence[LikenessRelease] = (),
) -> float:
    """The init segment and every segment in ``folder`` as one MP4 at ``output`` (fast start, the container
    metadata kept, packets copied), signed by ``signer``; the seconds signing took."""
    count = stored_segments(folder)
    stream = io.BytesIO((folder / INIT).read_bytes() + b"".join(
        (folder / segment_name(index)).read_bytes() for index in range(count)))
    temporary = partial_path(output)
    try:
        with av.open(stream, "r", format="mp4") as source, av.open(
            str(temporary), "w", format="mp4", options=FAST_START
        ) as sink:
            copy_video(source, sink, video_like(source, sink, metadata))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return put_in_place(temporary, output, signer, likenesses=likenesses)
