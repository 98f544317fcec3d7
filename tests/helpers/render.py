"""Scenes, bibles and checks on decoded clips shared by the renderer tests."""

from __future__ import annotations

import struct
from collections import deque
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from reelfork.generation.render.labels import BADGE_BOX_COLOR, BADGE_TEXT_COLOR, badge
from reelfork.narrative.story import Bible, Character, Choice, Line, Scene, Voice

AIGC_FIELDS = {
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
}


def make_bible(voice: str = "en-us+f3") -> Bible:
    return Bible(
        logline="A courier learns the package she carries is her own memory.",
        setting="A rain-soaked port city, 2041.",
        tone="noir",
        characters=[
            Character(
                id="mei",
                name="Mei Lin",
                look="short black hair, red bomber jacket, a scar over the left eyebrow",
                voice=Voice(voice=voice, pitch=60, rate=175),
                color="#e0457b",
            ),
            Character(id="jun", name="Jun", look="tall, grey trench coat, silver glasses", voice=Voice(voice="en-gb")),
        ],
    )


def make_scene(place: str = "rooftop garden at night", mood: str = "tense", scene_id: str = "rooftop") -> Scene:
    return Scene(
        id=scene_id,
        title="The Package",
        place=place,
        mood=mood,
        lines=[
            Line(id="l1", speaker="narrator", text="Rain on the rooftop. Mei waits."),
            Line(id="l2", speaker="mei", text="You said it would be simple."),
            Line(id="l3", speaker="jun", text="Nothing about you is simple. Open it."),
        ],
        choices=[Choice(id="open", label="Open it", target="next")],
    )


def frames_at(path: Path, times: list[float]) -> list[NDArray[np.uint8]]:
    """The first decoded frame at or after each time (times ascending)."""
    wanted, found = list(times), []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            while wanted and frame.time is not None and frame.time >= wanted[0] - 1e-6:
                found.append(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
                wanted.pop(0)
            if not wanted:
                break
    assert not wanted, f"no frames at {wanted}"
    return found


def last_decoded_frame(path: Path) -> NDArray[np.uint8]:
    with av.open(str(path)) as container:
        (last,) = deque(container.decode(video=0), maxlen=1)
        return np.asarray(last.to_ndarray(format="rgb24"), dtype=np.uint8)


def atom_paths(data: bytes, start: int = 0, end: int | None = None, prefix: str = "") -> list[str]:
    """Every ISO-BMFF box path in the file, e.g. ``moov/udta/meta/ilst``."""
    containers = {"moov", "udta", "meta", "trak", "mdia", "minf", "stbl", "ilst"}
    end = len(data) if end is None else end
    paths, position = [], start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif size == 0:
            size = end - position
        if size < header:
            break
        name = kind.decode("latin-1")
        path = f"{prefix}/{name}" if prefix else name
        paths.append(path)
        if name in containers:
            body = position + header
            if name == "meta" and data[body : body + 4] == b"\0\0\0\0":
                body += 4  # QuickTime meta has no version/flags; ISO meta (full box) does.
            paths += atom_paths(data, body, position + size, path)
        position += size
    return paths


def assert_badge_shown(frame: NDArray[np.uint8]) -> None:
    """The visible AI mark is on this decoded frame: white text on its dark box, where :func:`badge` puts it."""
    mark = badge(frame.shape[1])
    region = frame[mark.y : mark.y + mark.height, mark.x : mark.x + mark.width].astype(int)
    white = (np.abs(region - np.array(BADGE_TEXT_COLOR)).max(axis=2) < 40).mean()
    dark = (np.abs(region - np.array(BADGE_BOX_COLOR)).max(axis=2) < 40).mean()
    assert white > 0.05, f"too little badge text in the badge region ({white:.1%})"
    assert dark > 0.4, f"the badge box is not there ({dark:.1%})"
