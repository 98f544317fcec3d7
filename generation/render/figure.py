"""Drawn people: a character's head and shoulders from its structured :class:`Appearance`, the same in every clip.

A figure is drawn from its appearance alone (hair by style and colour, skin tone, eyes, build, outfit
and its colour, the signature detail), at twice the size and reduced for smooth edges. The mouth is
left out: it is the lip-sync's (:mod:`reelfork.generation.render.lipsync`), which draws it in the
figure's :class:`Drawn.mouth` box, so the body of a shot is shared by every locale. Shots are 9:16
close-ups of one figure or two.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from reelfork.generation.render.drawing import hex_color
from reelfork.generation.render.lipsync import REST, draw_mouth, lip_color
from reelfork.narrative.appearance import Appearance

__all__ = ["Drawn", "figure", "portrait", "shot_boxes"]

SCALE = 2
"""Drawn at this multiple of the final size, then reduced."""

Color = tuple[int, int, int]
Box = tuple[int, int, int, int]
"""x, y, width, height in pixels."""


@dataclass(frozen=True)
class Drawn:
    """A figure without its mouth, on a transparent ground, and where things are in it."""

    image: Image.Image
    mouth: Box
    """The mouth's box (even position and size), for the lip-sync to draw in."""
    face: Box
    """The head's box: the region that identifies the figure."""


SHOULDERS = {"slight": 0.34, "average": 0.41, "broad": 0.48}
"""Half the shoulders' width, as a share of the figure's width, by build."""


def shade(color: Color, factor: float) -> Color:
    return (min(255, round(color[0] * factor)), min(255, round(color[1] * factor)), min(255, round(color[2] * factor)))


def blend(a: Color, b: Color, share_of_b: float) -> Color:
    return (
        round(a[0] * (1 - share_of_b) + b[0] * share_of_b),
        round(a[1] * (1 - share_of_b) + b[1] * share_of_b),
        round(a[2] * (1 - share_of_b) + b[2] * share_of_b),
    )


def contrast(color: Color) -> Color:
    """A colour that stands out on ``color``: its complement, kept away from grey."""
    r, g, b = 255 - color[0], 255 - color[1], 255 - color[2]
    return (max(r, 60), max(g // 2, 30), max(b // 2, 30)) if abs(r - g) + abs(g - b) < 60 else (r, g, b)


@lru_cache(maxsize=64)
def figure(appearance: Appearance, width: int, height: int) -> Drawn:
    """The figure in a ``width`` x ``height`` box: head in the upper part, shoulders and torso down to the bottom."""
    w, h = width * SCALE, height * SCALE
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    skin, hair = hex_color(appearance.skin_tone), hex_color(appearance.hair_color)
    cloth = hex_color(appearance.outfit_color)
    cx = w / 2
    head_w = w * 0.5
    head_h = head_w * 1.22
    top = w * 0.16
    left, right, chin = cx - head_w / 2, cx + head_w / 2, top + head_h
    shoulders = chin + w * 0.05
    half = w * SHOULDERS[appearance.build]

    _hair_behind(draw, appearance, hair, cx, left, right, top, head_w, head_h, shoulders, w)
    if appearance.outfit == "hoodie":
        draw.ellipse((cx - head_w * 0.62, chin - head_h * 0.25, cx + head_w * 0.62, shoulders + w * 0.12),
                     fill=shade(cloth, 0.8))
    draw.rectangle((cx - w * 0.1, chin - head_h * 0.2, cx + w * 0.1, shoulders + w * 0.06), fill=shade(skin, 0.88))
    _torso(draw, appearance, cloth, skin, cx, half, shoulders, w, h)
    # ears, then the head over them
    ear_y = top + head_h * 0.47
    for side in (-1, 1):
        ex = cx + side * head_w * 0.49
        draw.ellipse((ex - w * 0.035, ear_y - w * 0.05, ex + w * 0.035, ear_y + w * 0.05), fill=shade(skin, 0.92))
    draw.ellipse((left, top, right, chin), fill=skin)
    _face(draw, appearance, skin, hair, cx, top, head_w, head_h, w)
    _hair_front(draw, appearance, hair, cx, left, right, top, head_w, head_h, w)
    _detail(draw, appearance, skin, hair, cloth, cx, left, right, top, head_w, head_h, chin, shoulders, ear_y, w)

    # A dark outline two pixels wide (a dilation of the figure's alpha, by shifted maxima), then the figure over it.
    alpha = np.asarray(image.getchannel("A"))
    grown = alpha.copy()
    np.maximum(grown[2:], alpha[:-2], out=grown[2:])
    np.maximum(grown[:-2], alpha[2:], out=grown[:-2])
    np.maximum(grown[:, 2:], alpha[:, :-2], out=grown[:, 2:])
    np.maximum(grown[:, :-2], alpha[:, 2:], out=grown[:, :-2])
    ground = Image.new("RGBA", image.size, (12, 12, 18, 0))
    ground.putalpha(Image.fromarray(np.minimum(grown, 160)))
    ground.alpha_composite(image)
    reduced = ground.reduce(SCALE)

    mouth_w, mouth_h = head_w * 0.52 / SCALE, head_w * 0.34 / SCALE
    mouth_cy = (top + head_h * 0.77) / SCALE
    mouth = _even((round(cx / SCALE - mouth_w / 2), round(mouth_cy - mouth_h * 0.45), round(mouth_w), round(mouth_h)))
    face = (round(left / SCALE), round(top / SCALE), round(head_w / SCALE), round(head_h / SCALE))
    return Drawn(image=reduced, mouth=mouth, face=face)


def _even(box: Box) -> Box:
    x, y, w, h = box
    return x - x % 2, y - y % 2, w + w % 2, h + h % 2


def _hair_behind(
    draw: ImageDraw.ImageDraw, a: Appearance, hair: Color, cx: float, left: float, right: float, top: float,
    head_w: float, head_h: float, shoulders: float, w: float,
) -> None:
    if a.hair_style == "long":
        draw.rounded_rectangle((left - head_w * 0.12, top + head_h * 0.2, right + head_w * 0.12, shoulders + w * 0.2),
                               radius=w * 0.08, fill=shade(hair, 0.85))
    elif a.hair_style == "bob":
        draw.rounded_rectangle((left - head_w * 0.1, top + head_h * 0.15, right + head_w * 0.1, top + head_h * 0.98),
                               radius=w * 0.06, fill=shade(hair, 0.85))
    elif a.hair_style == "ponytail":
        draw.ellipse((right - head_w * 0.05, top + head_h * 0.25, right + head_w * 0.3, top + head_h * 1.25),
                     fill=shade(hair, 0.85))
    elif a.hair_style == "bun":
        radius = head_w * 0.22
        draw.ellipse((cx - radius, top - radius * 1.3, cx + radius, top + radius * 0.7), fill=hair)
    elif a.hair_style == "curly":
        for index in range(9):
            angle_x = (index - 4) / 4
            x = cx + angle_x * head_w * 0.55
            y = top + head_h * (0.12 + 0.3 * angle_x**2)
            r = head_w * 0.16
            draw.ellipse((x - r, y - r, x + r, y + r), fill=shade(hair, 0.9))


def _hair_front(
    draw: ImageDraw.ImageDraw, a: Appearance, hair: Color, cx: float, left: float, right: float, top: float,
    head_w: float, head_h: float, w: float,
) -> None:
    style = a.hair_style
    if style == "bald":
        draw.ellipse((cx - head_w * 0.2, top + head_h * 0.05, cx + head_w * 0.05, top + head_h * 0.14),
                     fill=blend(hex_color(a.skin_tone), (255, 255, 255), 0.2))
        return
    if style == "buzz":
        draw.chord((left, top - head_h * 0.01, right, top + head_h * 0.5), 180, 360,
                   fill=blend(hair, hex_color(a.skin_tone), 0.35))
        return
    reach = {"bob": 0.78, "long": 0.66, "short": 0.56, "curly": 0.62}.get(style, 0.58)
    draw.chord((left - head_w * 0.04, top - head_h * 0.06, right + head_w * 0.04, top + head_h * reach), 180, 360,
               fill=hair)
    if style in ("long", "bob"):
        for side in (-1, 1):  # locks falling beside the face
            x = cx + side * head_w * 0.47
            draw.rounded_rectangle((x - head_w * 0.08, top + head_h * 0.2, x + head_w * 0.08, top + head_h * 0.95),
                                   radius=head_w * 0.06, fill=hair)
    if style == "short":
        for side in (-1, 1):  # sideburns
            x = cx + side * head_w * 0.46
            draw.rectangle((x - head_w * 0.04, top + head_h * 0.25, x + head_w * 0.04, top + head_h * 0.45), fill=hair)
    if style == "curly":
        for index in range(5):
            x = cx + (index - 2) * head_w * 0.2
            r = head_w * 0.1
            draw.ellipse((x - r, top + head_h * 0.1 - r, x + r, top + head_h * 0.1 + r), fill=shade(hair, 1.15))


def _face(
    draw: ImageDraw.ImageDraw, a: Appearance, skin: Color, hair: Color, cx: float, top: float, head_w: float,
    head_h: float, w: float,
) -> None:
    eye_y = top + head_h * 0.5
    brow = shade(hair, 0.8) if a.hair_style != "bald" else shade(skin, 0.55)
    for side in (-1, 1):
        x = cx + side * head_w * 0.2
        ew, eh = head_w * 0.085, head_w * 0.05
        draw.ellipse((x - ew, eye_y - eh, x + ew, eye_y + eh), fill=(245, 242, 236))
        iris = head_w * 0.042
        draw.ellipse((x - iris, eye_y - iris, x + iris, eye_y + iris), fill=(40, 30, 26))
        draw.ellipse((x - iris * 0.35 + iris * 0.3, eye_y - iris * 0.6, x + iris * 0.3, eye_y - iris * 0.1),
                     fill=(255, 255, 255))
        draw.line((x - ew * 1.1, eye_y - head_w * 0.1, x + ew * 1.1, eye_y - head_w * 0.115 + side * 0.0),
                  fill=brow, width=max(2, round(head_w * 0.03)))
    nose_y = top + head_h * 0.64
    draw.line((cx, eye_y + head_w * 0.05, cx - head_w * 0.03, nose_y), fill=shade(skin, 0.78),
              width=max(2, round(head_w * 0.018)))
    draw.line((cx - head_w * 0.03, nose_y, cx + head_w * 0.03, nose_y), fill=shade(skin, 0.78),
              width=max(2, round(head_w * 0.018)))
    for side in (-1, 1):  # cheeks
        x = cx + side * head_w * 0.27
        r = head_w * 0.07
        cheek = top + head_h * 0.66
        draw.ellipse((x - r, cheek - r, x + r, cheek + r), fill=blend(skin, (232, 120, 120), 0.18))


def _torso(
    draw: ImageDraw.ImageDraw, a: Appearance, cloth: Color, skin: Color, cx: float, half: float, shoulders: float,
    w: float, h: float,
) -> None:
    dark, light = shade(cloth, 0.7), shade(cloth, 1.25)
    draw.rounded_rectangle((cx - half, shoulders, cx + half, h + w * 0.2), radius=w * 0.12, fill=cloth)
    neck = w * 0.1
    outfit = a.outfit
    if outfit in ("coat", "suit"):
        inner = (240, 238, 232) if outfit == "suit" else shade(cloth, 0.5)
        draw.polygon([(cx - neck * 1.4, shoulders), (cx + neck * 1.4, shoulders), (cx, shoulders + w * 0.32)],
                     fill=inner)
        if outfit == "suit":
            draw.polygon([(cx - neck * 0.3, shoulders + w * 0.03), (cx + neck * 0.3, shoulders + w * 0.03),
                          (cx + neck * 0.4, shoulders + w * 0.26), (cx, shoulders + w * 0.31),
                          (cx - neck * 0.4, shoulders + w * 0.26)], fill=(130, 24, 36))
        for side in (-1, 1):  # lapels
            draw.polygon([(cx + side * neck * 1.4, shoulders), (cx + side * neck * 2.6, shoulders + w * 0.02),
                          (cx + side * neck * 0.2, shoulders + w * 0.4)], fill=dark)
    elif outfit == "dress":
        draw.chord((cx - neck * 2.2, shoulders - w * 0.12, cx + neck * 2.2, shoulders + w * 0.16), 0, 180,
                   fill=shade(skin, 0.95))
        for side in (-1, 1):
            x = cx + side * neck * 2.4
            draw.line((x, shoulders, x - side * neck * 0.3, shoulders + w * 0.06), fill=dark, width=round(w * 0.02))
    elif outfit == "jacket":
        draw.line((cx, shoulders + w * 0.05, cx, h), fill=light, width=max(2, round(w * 0.012)))
        for side in (-1, 1):
            draw.polygon([(cx + side * neck * 1.2, shoulders - w * 0.02), (cx + side * neck * 2.8, shoulders),
                          (cx + side * neck * 0.4, shoulders + w * 0.12)], fill=dark)
    elif outfit == "sweater":
        rib = shade(cloth, 1.6)
        draw.chord((cx - neck * 1.5, shoulders - w * 0.06, cx + neck * 1.5, shoulders + w * 0.08), 0, 180, fill=rib)
        for index in range(1, 4):
            y = shoulders + w * 0.15 * index + w * 0.1
            draw.line((cx - half * 0.8, y, cx + half * 0.8, y), fill=rib, width=round(w * 0.012))
    elif outfit == "uniform":
        gold = (214, 178, 74)
        for side in (-1, 1):
            draw.rectangle((cx + side * half * 0.62 - w * 0.05, shoulders + w * 0.005,
                            cx + side * half * 0.62 + w * 0.05, shoulders + w * 0.035), fill=gold)
            for index in range(4):
                y = shoulders + w * (0.1 + 0.09 * index)
                x = cx + side * w * 0.06
                draw.ellipse((x - w * 0.012, y - w * 0.012, x + w * 0.012, y + w * 0.012), fill=gold)
        draw.rectangle((cx - neck * 0.9, shoulders - w * 0.03, cx + neck * 0.9, shoulders + w * 0.02), fill=dark)
    elif outfit == "shirt":
        draw.line((cx, shoulders + w * 0.05, cx, h), fill=dark, width=max(2, round(w * 0.008)))
        for side in (-1, 1):
            draw.polygon([(cx, shoulders + w * 0.05), (cx + side * neck * 1.3, shoulders - w * 0.02),
                          (cx + side * neck * 1.5, shoulders + w * 0.07)], fill=light)
        for index in range(4):
            y = shoulders + w * (0.12 + 0.1 * index)
            draw.ellipse((cx - w * 0.008, y - w * 0.008, cx + w * 0.008, y + w * 0.008), fill=dark)
    elif outfit == "hoodie":
        for side in (-1, 1):
            x = cx + side * neck * 0.6
            draw.line((x, shoulders + w * 0.02, x + side * w * 0.01, shoulders + w * 0.2), fill=(236, 236, 236),
                      width=max(2, round(w * 0.01)))
        if shoulders + w * 0.42 < h:  # the pocket, when the torso reaches down that far
            draw.rounded_rectangle((cx - half * 0.5, shoulders + w * 0.42, cx + half * 0.5, h + w * 0.1),
                                   radius=w * 0.04, fill=dark)


def _detail(
    draw: ImageDraw.ImageDraw, a: Appearance, skin: Color, hair: Color, cloth: Color, cx: float, left: float,
    right: float, top: float, head_w: float, head_h: float, chin: float, shoulders: float, ear_y: float, w: float,
) -> None:
    detail = a.detail
    eye_y = top + head_h * 0.5
    line = max(2, round(head_w * 0.022))
    if detail == "glasses":
        frame = (34, 34, 40)
        for side in (-1, 1):
            x = cx + side * head_w * 0.2
            draw.rounded_rectangle((x - head_w * 0.13, eye_y - head_w * 0.08, x + head_w * 0.13, eye_y + head_w * 0.08),
                                   radius=head_w * 0.04, outline=frame, width=line)
        draw.line((cx - head_w * 0.07, eye_y - head_w * 0.02, cx + head_w * 0.07, eye_y - head_w * 0.02), fill=frame,
                  width=line)
    elif detail == "scar":  # over the figure's left eyebrow (the viewer's right)
        x = cx + head_w * 0.2
        draw.line((x - head_w * 0.05, eye_y - head_w * 0.2, x + head_w * 0.06, eye_y - head_w * 0.01),
                  fill=(150, 60, 64), width=round(line * 1.5))
    elif detail == "earrings":
        for side in (-1, 1):
            x = cx + side * head_w * 0.5
            r = head_w * 0.045
            draw.ellipse((x - r, ear_y + w * 0.05, x + r, ear_y + w * 0.05 + 2 * r), fill=(226, 190, 80))
    elif detail == "beard":
        draw.chord((left + head_w * 0.02, top + head_h * 0.45, right - head_w * 0.02, chin + head_h * 0.08), 0, 180,
                   fill=hair)
    elif detail == "moustache":
        y = top + head_h * 0.7
        draw.chord((cx - head_w * 0.17, y - head_w * 0.05, cx + head_w * 0.17, y + head_w * 0.06), 180, 360, fill=hair)
    elif detail == "hat":
        crown = shade(cloth, 0.6)
        draw.rectangle((left - head_w * 0.2, top + head_h * 0.12, right + head_w * 0.2, top + head_h * 0.2), fill=crown)
        draw.rounded_rectangle((left + head_w * 0.08, top - head_h * 0.2, right - head_w * 0.08, top + head_h * 0.16),
                               radius=head_w * 0.06, fill=crown)
    elif detail == "scarf":
        scarf = contrast(cloth)
        draw.rounded_rectangle((cx - head_w * 0.42, chin - head_h * 0.05, cx + head_w * 0.42, shoulders + w * 0.06),
                               radius=w * 0.04, fill=scarf)
        draw.rectangle((cx + head_w * 0.1, shoulders, cx + head_w * 0.28, shoulders + w * 0.3), fill=shade(scarf, 0.85))
    elif detail == "necklace":
        draw.arc((cx - w * 0.1, shoulders - w * 0.1, cx + w * 0.1, shoulders + w * 0.09), 20, 160, fill=(226, 190, 80),
                 width=line)
        draw.ellipse((cx - w * 0.018, shoulders + w * 0.075, cx + w * 0.018, shoulders + w * 0.11), fill=(200, 40, 60))
    elif detail == "freckles":
        spot = shade(skin, 0.7)
        for side in (-1, 1):
            for dx, dy in ((0.0, 0.0), (0.06, 0.03), (-0.05, 0.04), (0.02, 0.07), (0.09, -0.02)):
                x = cx + side * head_w * (0.25 + dx)
                y = top + head_h * (0.6 + dy)
                r = head_w * 0.014
                draw.ellipse((x - r, y - r, x + r, y + r), fill=spot)


def shot_boxes(count: int, width: int, height: int) -> list[Box]:
    """Figure boxes for a 9:16 close-up: one figure large in the middle, or two side by side, heads in the upper half
    (the lower third stays clear enough for burned-in subtitles over the torsos)."""
    if count <= 0:
        return []
    if count == 1:
        box_w = round(width * 0.9)
        top = round(height * 0.2)
        return [(round((width - box_w) / 2), top, box_w, height - top)]
    box_w = round(width * 0.62)
    top = round(height * 0.27)
    return [(round(-width * 0.04), top, box_w, height - top), (round(width * 0.42), top, box_w, height - top)]


def portrait(appearance: Appearance, width: int, height: int) -> Image.Image:
    """A head-and-shoulders portrait on a plain backdrop, mouth at rest: the cast's reference picture."""
    backdrop = Image.new("RGBA", (width, height), (58, 64, 78, 255))
    drawn = figure(appearance, width, round(height * 0.86))
    backdrop.alpha_composite(drawn.image, (0, height - drawn.image.height))
    x, y, w, h = drawn.mouth
    y += height - drawn.image.height
    mouth = backdrop.crop((x, y, x + w, y + h)).convert("RGB")
    draw_mouth(mouth, REST, lip_color(appearance.skin_tone))
    backdrop.paste(mouth, (x, y))
    return backdrop.convert("RGB")
