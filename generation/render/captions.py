"""Text over the picture: the scene title, and a line's subtitles paged in step with its speech."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from reelfork.generation.render.drawing import Font, Overlay, ellipsize, font, text_width, wrap
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.scenery import character_color
from reelfork.narrative.story import NARRATOR, Bible, Character, Line

SUBTITLE_LINES = 3
"""At most this many wrapped lines on screen; longer lines are paged in step with the speech."""


def title_overlay(title: str, place: str, width: int, height: int) -> Overlay:
    """The scene title and place, centred near the top on a soft dark band."""
    title_face, place_face = font(max(10, round(width * 0.062)), "bold"), font(max(8, round(width * 0.034)), "italic")
    lines = wrap(title, title_face, width * 0.84)
    if len(lines) > 2:
        lines = [lines[0], ellipsize(f"{lines[1]} {lines[2]}", title_face, width * 0.84)]
    line_height = round(width * 0.062 * 1.25)
    band_height = line_height * len(lines) + round(width * 0.034 * 1.4) + round(width * 0.08)
    shade = np.zeros((band_height, width, 4), dtype=np.uint8)
    shade[:, :, 3] = (150 * np.sin(np.linspace(0, math.pi, band_height)) ** 0.6)[:, None].astype(np.uint8)
    image = Image.fromarray(shade, "RGBA")
    draw = ImageDraw.Draw(image)
    y = round(width * 0.04)
    for text in lines:
        draw.text((width / 2, y), text, font=title_face, fill=(255, 255, 255, 255), anchor="ma")
        y += line_height
    draw.text(
        (width / 2, y),
        ellipsize(place, place_face, width * 0.84),
        font=place_face,
        fill=(225, 225, 235, 255),
        anchor="ma",
    )
    return Overlay.from_image(image, 0, round(height * 0.11))


@dataclass(frozen=True)
class Subtitle:
    key: tuple[str, int]
    """Line ID and page number."""
    lines: list[str]
    overlay: Overlay


def subtitle_pages(line: Line, bible: Bible, profile: RenderProfile) -> list[Subtitle]:
    """The line's subtitles, at most SUBTITLE_LINES wrapped lines per page, in the bottom third."""
    width, height = profile.width, profile.height
    size = max(9, round(width * 0.05))
    narrated = line.speaker == NARRATOR
    face = font(size, "italic" if narrated else "regular")
    wrapped = wrap(line.text, face, width * 0.82) or [line.text]
    pages = [wrapped[index : index + SUBTITLE_LINES] for index in range(0, len(wrapped), SUBTITLE_LINES)]
    speaker = None if narrated else bible.character(line.speaker)
    return [
        Subtitle((line.id, number), page, subtitle_overlay(page, face, size, speaker, width, height))
        for number, page in enumerate(pages)
    ]


def page_ends(pages: list[Subtitle]) -> list[float]:
    """Where each page ends, as a fraction of its line's speech: each page stays up for its share of the
    line's characters."""
    if not pages:
        return []
    weights = np.cumsum([sum(len(text) for text in page.lines) for page in pages])
    return [float(weight) for weight in weights / weights[-1]]


def subtitle_overlay(
    lines: list[str], face: Font, size: int, speaker: Character | None, width: int, height: int
) -> Overlay:
    line_height = round(size * 1.3)
    pad = round(size * 0.6)
    name_face = font(max(8, round(size * 0.7)), "bold")
    name_height = round(size * 0.95) if speaker is not None else 0
    widest = round(width * 0.92) - 2 * pad
    name = ellipsize(speaker.name.upper(), name_face, widest) if speaker is not None else ""
    text_width_max = max([text_width(name, name_face), *(text_width(text, face) for text in lines)])
    box_width = min(widest, round(text_width_max)) + 2 * pad
    box_height = name_height + line_height * len(lines) + 2 * pad - round(size * 0.3)
    image = Image.new("RGBA", (box_width, box_height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, box_width - 1, box_height - 1), radius=pad, fill=(10, 10, 14, 175))
    y = pad
    if speaker is not None:
        draw.text((box_width / 2, y), name, font=name_face, fill=(*character_color(speaker), 255), anchor="ma")
        y += name_height
    for text in lines:
        # A dark outline keeps the text readable where the box is faint.
        draw.text(
            (box_width / 2, y),
            text,
            font=face,
            fill=(255, 255, 255, 255),
            anchor="ma",
            stroke_width=1,
            stroke_fill=(0, 0, 0, 255),
        )
        y += line_height
    bottom = round(height * 0.90)
    return Overlay.from_image(image, (width - box_width) // 2, bottom - box_height)
