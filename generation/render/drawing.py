"""Drawing primitives shared by the renderers: fonts, text wrapping, overlays.

Frames are composed directly in yuv420p, the encoder's format: converting
each RGB frame would cost as much as encoding it. An :class:`Overlay` is an
RGBA patch converted and pre-multiplied once, so blending it costs one integer
multiply-add over its own rectangle.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFont

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]
"""An RGB frame, ``height x width x 3``."""
Picture = NDArray[np.uint8]
"""A yuv420p frame as PyAV lays it out: ``height * 3 / 2`` rows of ``width``, Y then U then V."""

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
FONT_FILES = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "italic": "DejaVuSans-Oblique.ttf",
}


@cache
def font(size: int, style: str = "regular") -> Font:
    """DejaVu at ``size`` pixels, or Pillow's built-in font when DejaVu is not installed."""
    name = FONT_FILES[style]
    for folder in FONT_DIRS:
        path = folder / name
        if path.exists():
            return ImageFont.truetype(str(path), size)
    log.warning("font %s not found in %s; using Pillow's default font", name, FONT_DIRS)
    return ImageFont.load_default(size)


def text_width(text: str, face: Font) -> float:
    return float(face.getlength(text))


def wrap(text: str, face: Font, max_width: float) -> list[str]:
    """Greedy word wrap by rendered width; words wider than a line (or scripts without
    spaces, such as Chinese) are broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, face) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        for char in word:
            if text_width(current + char, face) > max_width and current:
                lines.append(current)
                current = ""
            current += char
    if current:
        lines.append(current)
    return lines


def ellipsize(text: str, face: Font, max_width: float) -> str:
    if text_width(text, face) <= max_width:
        return text
    while text and text_width(text + "…", face) > max_width:
        text = text[:-1]
    return text + "…"


def digest_bytes(*parts: str) -> bytes:
    """A stable hash of text, for deterministic colours and layouts (not ``hash()``, which is salted)."""
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def hex_color(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def hsv_color(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    """Hue in turns [0, 1); saturation and value in [0, 1]."""
    image = Image.new("HSV", (1, 1), (int(hue % 1.0 * 255), int(saturation * 255), int(value * 255)))
    r, g, b = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    return int(r), int(g), int(b)


def rgb_to_yuv420(frame: Frame) -> Picture:
    """RGB to yuv420p (BT.601, limited range, as decoders assume for untagged SD video);
    chroma is the mean of each 2x2 block. Width and height must be even."""
    planes = yuv_planes(frame.astype(np.float32))
    height, width = frame.shape[:2]
    picture = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma, blue, red = split(picture)
    luma[...] = np.clip(planes[0] + 0.5, 0, 255)
    blue[...] = np.clip(subsample(planes[1]) + 0.5, 0, 255)
    red[...] = np.clip(subsample(planes[2]) + 0.5, 0, 255)
    return picture


def yuv420_to_rgb(picture: Picture) -> Frame:
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def split(picture: Picture) -> tuple[Picture, Picture, Picture]:
    """Views of the Y, U and V planes of a yuv420p array laid out as PyAV does: ``(h * 3 / 2) x w``."""
    height, width = picture.shape[0] * 2 // 3, picture.shape[1]
    flat = picture.reshape(-1)  # a view: the chroma planes need not start on a row boundary
    area, quarter = height * width, height * width // 4
    luma = picture[:height]
    blue = flat[area : area + quarter].reshape(height // 2, width // 2)
    red = flat[area + quarter : area + 2 * quarter].reshape(height // 2, width // 2)
    return luma, blue, red


def yuv_planes(rgb: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    luma = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    blue = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    red = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return luma, blue, red


def subsample(plane: NDArray[np.float32]) -> NDArray[np.float32]:
    height, width = plane.shape
    blocks: NDArray[np.float32] = plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    return blocks


@dataclass(frozen=True)
class Layer:
    """One plane of an overlay: ``value * alpha`` and ``256 - alpha``, alpha in 0..256."""

    premultiplied: NDArray[np.uint16]
    inverse_alpha: NDArray[np.uint16]


@dataclass(frozen=True)
class Overlay:
    """A pre-multiplied RGBA patch at ``(x, y)``, kept as yuv420p layers so that it blends
    straight onto the frames the encoder takes, with no colour conversion per frame.
    Position and size are even, so the chroma layers line up with the frame's."""

    x: int
    y: int
    layers: tuple[Layer, Layer, Layer]

    @classmethod
    def from_image(cls, image: Image.Image, x: int, y: int) -> Overlay:
        rgba = image.convert("RGBA")
        width, height = rgba.width + rgba.width % 2, rgba.height + rgba.height % 2
        if (width, height) != rgba.size:
            padded = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            padded.paste(rgba, (0, 0))
            rgba = padded
        pixels = np.asarray(rgba, dtype=np.float32)
        # 0..255 -> 0..256, so that an opaque pixel replaces the frame exactly.
        alpha = pixels[:, :, 3] * (256 / 255)
        luma, blue, red = yuv_planes(pixels[:, :, :3])
        chroma_alpha = subsample(alpha)
        layers = (
            layer(luma * alpha, alpha),
            layer(subsample(blue * alpha), chroma_alpha),
            layer(subsample(red * alpha), chroma_alpha),
        )
        return cls(x=x - x % 2, y=y - y % 2, layers=layers)

    @property
    def height(self) -> int:
        return int(self.layers[0].premultiplied.shape[0])

    @property
    def width(self) -> int:
        return int(self.layers[0].premultiplied.shape[1])

    def apply(self, picture: Picture, opacity: float = 1.0) -> None:
        """Blend onto a yuv420p ``picture`` in place; the overlay is clipped to the frame."""
        if opacity <= 0.0:
            return
        for plane, overlay, scale in zip(split(picture), self.layers, (1, 2, 2), strict=True):
            blend(plane, overlay, self.x // scale, self.y // scale, opacity)


def layer(premultiplied: NDArray[np.float32], alpha: NDArray[np.float32]) -> Layer:
    alpha16 = np.clip(alpha + 0.5, 0, 256).astype(np.uint16)
    return Layer(
        premultiplied=np.clip(premultiplied + 0.5, 0, 255 * 256).astype(np.uint16),
        inverse_alpha=(256 - alpha16).astype(np.uint16),
    )


def blend(plane: Picture, overlay: Layer, x: int, y: int, opacity: float) -> None:
    height, width = overlay.premultiplied.shape
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + height, plane.shape[0]), min(x + width, plane.shape[1])
    if bottom <= top or right <= left:
        return
    rows, cols = slice(top - y, bottom - y), slice(left - x, right - x)
    region = plane[top:bottom, left:right]
    premultiplied: NDArray[np.unsignedinteger[Any]] = overlay.premultiplied[rows, cols]
    inverse_alpha: NDArray[np.unsignedinteger[Any]] = overlay.inverse_alpha[rows, cols]
    if opacity < 1.0:
        # Widen first: 65280 * 256 does not fit in uint16.
        level = np.uint32(opacity * 256)
        alpha = ((256 - inverse_alpha.astype(np.uint32)) * level) >> 8
        premultiplied = ((premultiplied.astype(np.uint32) * level) >> 8).astype(np.uint32)
        inverse_alpha = (256 - alpha).astype(np.uint16)
    # region * (256 - a) + value * a < 256 * 256: uint16 holds it, and >> 8 is at most 255.
    blended = (region * inverse_alpha + premultiplied) >> 8
    region[...] = blended.astype(np.uint8)
