"""AI-content labels: the visible mark drawn on frames and the implicit ``AIGC`` metadata.

China's labelling measures (in force 2025-09-01) ask for both: a visible label at
least at the start of a video, and an implicit one in the file. For MP4 the TC260
practice puts an ``AIGC`` key in ``moov/udta/meta`` whose value is a JSON object
with the seven fields of :class:`AigcLabel`. EU AI Act Art. 50 asks for
machine-readable marking too; the same key serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import av
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, ValidationError
from reelfork.generation.render.drawing import Overlay, font
from reelfork.narrative.story import Character

AIGC_KEY = "AIGC"
PRODUCER = "reelfork"

BADGE_TEXT = "AI-generated"
BADGE_SECONDS = 3.0
"""How long the visible mark stays on screen from the start of each clip (the rules ask for the start)."""
BADGE_TEXT_COLOR = (255, 255, 255)
BADGE_BOX_COLOR = (12, 12, 16)
BADGE_BOX_ALPHA = 200
"""Out of 255: dark enough that white text reads on any backdrop."""


class AigcLabel(BaseModel):
    """The implicit label's JSON value. Field names are the TC260 ones, verbatim."""

    model_config = ConfigDict(frozen=True, extra="allow")

    Label: Literal["1", "2", "3"] = "1"
    """1: AI-generated; 2: possibly AI-generated; 3: suspected AI-generated."""
    ContentProducer: str
    """Who generated the content (the service provider's name or code)."""
    ProduceID: str
    """The producer's unique ID for this piece of content."""
    ReservedCode1: str = ""
    """Reserved for the producer, e.g. an integrity check."""
    ContentPropagator: str = ""
    """Filled in by a platform that distributes the content."""
    PropagateID: str = ""
    ReservedCode2: str = ""

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), ensure_ascii=False, separators=(",", ":"))


class LikenessRelease(BaseModel):
    """A real person's licensed likeness in a clip: whose character, and the reference of the signed release."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    character: str
    """The character's ID in the story bible."""
    name: str
    release: str


def likeness_releases(characters: Iterable[Character]) -> list[LikenessRelease]:
    """The releases of the licensed likenesses among ``characters`` (invented faces need none)."""
    return [
        LikenessRelease(character=c.id, name=c.name, release=c.likeness.release)
        for c in characters
        if c.likeness.kind == "licensed" and c.likeness.release is not None
    ]


def aigc_label(produce_id: str, producer: str = PRODUCER, reserved: str = "") -> AigcLabel:
    """The label a producer writes; propagator fields stay empty for the distributor."""
    return AigcLabel(ContentProducer=producer, ProduceID=produce_id, ReservedCode1=reserved)


def read_aigc(path: Path) -> AigcLabel | None:
    """The ``AIGC`` label of an MP4, or None when it has none (or it is not valid JSON of that shape)."""
    with av.open(str(path)) as container:
        value = container.metadata.get(AIGC_KEY)
    if value is None:
        return None
    try:
        return AigcLabel.model_validate_json(value)
    except ValidationError:
        return None


def badge(frame_width: int) -> Overlay:
    """The visible mark: white text on a dark translucent rounded box, top-left."""
    size = max(10, round(frame_width * 0.04))
    face = font(size, "bold")
    pad_x, pad_y = round(size * 0.6), round(size * 0.4)
    left, top, right, bottom = face.getbbox(BADGE_TEXT)
    width, height = int(right - left) + 2 * pad_x, int(bottom - top) + 2 * pad_y
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=pad_y, fill=(*BADGE_BOX_COLOR, BADGE_BOX_ALPHA))
    draw.text((pad_x - left, pad_y - top), BADGE_TEXT, font=face, fill=(*BADGE_TEXT_COLOR, 255))
    margin = round(frame_width * 0.03)
    return Overlay.from_image(image, margin, margin)
