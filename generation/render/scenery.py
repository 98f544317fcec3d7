"""The animatic's scenery, drawn once per scene: the backdrop for a place lit by a mood, and the
character cards (their layout, and each card as normal, speaking or listening)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from reelfork.generation.render.drawing import digest_bytes, hex_color, hsv_color
from reelfork.narrative.story import Character

MOODS: dict[str, tuple[float, float, tuple[int, int, int], float]] = {
    # keyword: (brightness, saturation, tint, tint strength)
    "tense": (0.8, 0.9, (150, 30, 40), 0.18),
    "angry": (0.85, 1.0, (190, 40, 20), 0.25),
    "dark": (0.6, 0.8, (20, 30, 80), 0.25),
    "ominous": (0.6, 0.8, (40, 20, 70), 0.25),
    "scary": (0.6, 0.7, (20, 50, 60), 0.3),
    "mysterious": (0.75, 0.9, (80, 40, 140), 0.25),
    "sad": (0.8, 0.5, (60, 80, 120), 0.25),
    "melancholy": (0.8, 0.5, (70, 80, 120), 0.25),
    "calm": (1.0, 0.8, (60, 140, 150), 0.15),
    "hopeful": (1.1, 0.9, (240, 190, 110), 0.2),
    "happy": (1.15, 1.0, (250, 200, 90), 0.2),
    "warm": (1.1, 1.0, (240, 150, 80), 0.22),
    "romantic": (1.05, 1.0, (230, 110, 150), 0.22),
    "playful": (1.15, 1.1, (120, 200, 120), 0.15),
}


def mood_light(mood: str) -> tuple[float, float, tuple[int, int, int], float]:
    words = mood.casefold()
    for keyword, light in MOODS.items():
        if keyword in words:
            return light
    seed = digest_bytes("mood", words)
    return 0.95, 0.9, hsv_color(seed[0] / 256, 0.5, 0.7), 0.12


def backdrop(place: str, mood: str, size: tuple[int, int]) -> Image.Image:
    """A vertical backdrop: the same place always gets the same sky, skyline and lights; the mood only relights it."""
    width, height = size
    rng = np.random.default_rng(int.from_bytes(digest_bytes("place", place.casefold().strip())[:8], "big"))
    hue = float(rng.random())
    horizon = int(height * rng.uniform(0.56, 0.68))
    top, low = np.array(hsv_color(hue, 0.5, 0.22)), np.array(hsv_color(hue + 0.05, 0.35, 0.62))
    ground_high, ground_low = np.array(hsv_color(hue + 0.5, 0.3, 0.3)), np.array(hsv_color(hue + 0.5, 0.35, 0.1))
    rows = np.empty((height, 3), dtype=np.float32)
    sky = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    ground = np.linspace(0.0, 1.0, height - horizon, dtype=np.float32)[:, None]
    rows[:horizon] = top * (1 - sky) + low * sky
    rows[horizon:] = ground_high * (1 - ground) + ground_low * ground
    pixels = np.repeat(rows[:, None, :], width, axis=1)

    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(3, 6))):  # lights: windows, lamps, a moon
        radius = width * rng.uniform(0.04, 0.12)
        cx, cy = width * rng.uniform(0.05, 0.95), horizon * rng.uniform(0.1, 0.7)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*hsv_color(hue + 0.12, 0.3, 1.0), 150))
    lights = layer.filter(ImageFilter.GaussianBlur(width * 0.03))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(int(rng.integers(6, 11))):  # silhouettes standing on the horizon
        block_width, block_height = width * rng.uniform(0.08, 0.26), height * rng.uniform(0.08, 0.36)
        x0 = width * rng.uniform(-0.1, 1.0)
        shade = hsv_color(hue + 0.55, 0.35, rng.uniform(0.08, 0.22))
        draw.rectangle((x0, horizon - block_height, x0 + block_width, horizon), fill=(*shade, 235))
        lit = hsv_color(hue + 0.12, 0.45, 0.85)
        for _ in range(int(rng.integers(0, 6))):
            wx = x0 + block_width * rng.uniform(0.1, 0.8)
            wy = horizon - block_height * rng.uniform(0.2, 0.9)
            draw.rectangle((wx, wy, wx + width * 0.02, wy + width * 0.025), fill=(*lit, 200))
    vanish = width * rng.uniform(0.3, 0.7)
    for step in range(-4, 5):  # floor lines towards a vanishing point
        draw.line((vanish, horizon, vanish + step * width * 0.35, height), fill=(255, 255, 255, 28), width=2)
    shapes = layer.filter(ImageFilter.GaussianBlur(max(1.0, width * 0.004)))

    image = Image.fromarray(pixels.astype(np.uint8), "RGB").convert("RGBA")
    image.alpha_composite(lights)
    image.alpha_composite(shapes)
    return relight(image, mood)


def relight(image: Image.Image, mood: str) -> Image.Image:
    brightness, saturation, tint, strength = mood_light(mood)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * saturation
    pixels = pixels * (1 - strength) + np.array(tint, dtype=np.float32) * strength * (grey / 255 + 0.35)
    height, width = pixels.shape[:2]
    ys, xs = np.ogrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j]
    vignette = 1.0 - 0.35 * np.clip(xs**2 * 0.6 + ys**2, 0, 1)
    pixels = pixels * brightness * vignette[:, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").convert("RGBA")


def character_color(character: Character) -> tuple[int, int, int]:
    if character.color is not None:
        return hex_color(character.color)
    return hsv_color(digest_bytes("character", character.id)[0] / 256, 0.6, 0.95)


def card_slots(count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Card rectangles (x, y, w, h) in frame coordinates: a grid in the middle band,
    clear of the title at the top and the subtitles in the bottom third."""
    if count == 0:
        return []
    columns = 1 if count == 1 else 2 if count in (2, 4) else 3
    rows = math.ceil(count / columns)
    band_top, band_height = height * 0.30, height * 0.32
    gap = width * 0.04
    card_width = min((width * 0.9 - gap * (columns - 1)) / columns, width * 0.5)
    card_height = min((band_height - gap * (rows - 1)) / rows, card_width * 0.9)
    slots = []
    for index in range(count):
        row, column = divmod(index, columns)
        in_row = min(columns, count - row * columns)
        left = (width - in_row * card_width - (in_row - 1) * gap) / 2
        top = band_top + (band_height - rows * card_height - (rows - 1) * gap) / 2
        slots.append(
            (
                round(left + column * (card_width + gap)),
                round(top + row * (card_height + gap)),
                round(card_width),
                round(card_height),
            )
        )
    return slots


def card(character: Character, width: int, height: int, state: str) -> Image.Image:
    """A character card: a head and shoulders in the look's colour, without text.
    ``state`` is normal, speaking (glow and border) or listening (dimmed). Drawn at
    2x and reduced, for smooth edges; padded by a margin for the glow."""
    scale, color = 2, character_color(character)
    pad = max(4, width // 12)
    w, h, p = width * scale, height * scale, pad * scale
    image = Image.new("RGBA", (w + 2 * p, h + 2 * p), (0, 0, 0, 0))
    box = (p, p, p + w - 1, p + h - 1)
    radius = min(w, h) // 8
    if state == "speaking":
        glow = Image.new("RGBA", image.size, (0, 0, 0, 0))
        ImageDraw.Draw(glow).rounded_rectangle(box, radius=radius, fill=(*color, 200))
        image = glow.filter(ImageFilter.GaussianBlur(p / 2))
    draw = ImageDraw.Draw(image)
    fill = (*mix(color, (14, 14, 20), 0.78), 225) if state == "speaking" else (16, 16, 24, 190)
    draw.rounded_rectangle(box, radius=radius, fill=fill)
    if state == "speaking":
        draw.rounded_rectangle(box, radius=radius, outline=(*color, 255), width=3 * scale)

    disc = min(h * 0.38, w * 0.34)
    cx, top = p + w / 2, p + h * 0.08
    draw.ellipse((cx - disc / 2, top, cx + disc / 2, top + disc), fill=(*color, 255))
    # No text on the card: names and words vary by viewer and language, and the picture is shared by all.
    # The character is told by the colour of the look (its palette); names travel in the subtitles.
    shoulders = (cx - disc * 0.62, top + disc * 1.08, cx + disc * 0.62, top + disc * 1.9)
    draw.pieslice(shoulders, 180, 360, fill=(*mix(color, (14, 14, 20), 0.35), 255))
    card_image = image.resize((width + 2 * pad, height + 2 * pad), Image.Resampling.LANCZOS)
    if state == "listening":
        card_image.putalpha(card_image.getchannel("A").point(lambda alpha: alpha * 6 // 10))
    return card_image


def mix(a: tuple[int, int, int], b: tuple[int, int, int], share_of_b: float) -> tuple[int, int, int]:
    return (
        round(a[0] * (1 - share_of_b) + b[0] * share_of_b),
        round(a[1] * (1 - share_of_b) + b[1] * share_of_b),
        round(a[2] * (1 - share_of_b) + b[2] * share_of_b),
    )
