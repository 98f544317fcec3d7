"""One viewer's stream: each segment of the shared picture's stream with their voice muxed in.

The picture's segments carry no sound and are shared by every viewer with the same look; a viewer's
segment ``k`` is the picture's segment ``k`` (video packets copied, never re-encoded) plus the AAC packets of
their voice track (:func:`reelfork.generation.render.dub.voice_packets`) that start inside it. Muxing one
costs milliseconds, so it is done when a viewer first asks for it, and kept. The init segment holds both
tracks and the implicit ``AIGC`` label; every fragment's decode times are set from its place on the clip's
timeline, so the segments of one stream play as one timeline, in any order they were made.
"""

from __future__ import annotations

import io

import av
from reelfork.generation.render.dub import remux
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.segments import FRAGMENTED, Fragments, timescales, trafs, with_decode_times

VIDEO_TRACK, AUDIO_TRACK = 1, 2


def audio_range(first_frame: int, frames: int, fps: int) -> tuple[int, int]:
    """The samples a segment's voice covers: from its first frame's time to its last frame's end."""
    return first_frame * SAMPLE_RATE // fps, (first_frame + frames) * SAMPLE_RATE // fps


def segment_audio(audio: list[tuple[int, bytes]], start: int, end: int, last: bool) -> list[tuple[int, bytes]]:
    """The AAC packets that start in ``[start, end)`` (every one left, for the last segment); never the priming one."""
    return [(pts, data) for pts, data in audio if pts >= start and pts >= 0 and (last or pts < end)]


def dubbed_segment(
    picture_init: bytes,
    picture_segment: bytes,
    first_frame: int,
    fps: int,
    audio: list[tuple[int, bytes]],
    locale: str,
    metadata: dict[str, str],
) -> tuple[bytes, bytes]:
    """The viewer's init segment and segment: ``picture_segment`` (starting at ``first_frame``) with ``audio``
    (their voice's AAC packets in this segment, ``(pts, bytes)`` at :data:`SAMPLE_RATE`)."""
    sink = Fragments()
    with av.open(io.BytesIO(picture_init + picture_segment), "r", format="mp4") as source, av.open(
        sink, "w", format="mp4", options={"movflags": FRAGMENTED}
    ) as container:
        remux(source, container, metadata, audio, locale)
    parts = sink.take()
    init = b"".join(data for kind, data in parts if kind in (b"ftyp", b"moov"))
    fragment = b"".join(data for kind, data in parts if kind in (b"moof", b"mdat"))
    scales = timescales(init)
    times = {VIDEO_TRACK: first_frame * scales[VIDEO_TRACK] // fps}
    if audio:
        times[AUDIO_TRACK] = audio[0][0] * scales[AUDIO_TRACK] // SAMPLE_RATE
    tracks = [track for track, _, _ in trafs(fragment)]
    if len(tracks) != len(set(tracks)):
        raise ValueError("a dubbed segment came out as more than one fragment per track")
    return init, with_decode_times(fragment, times)
