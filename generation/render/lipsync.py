"""Lip-sync: phoneme timings from espeak-ng, mapped to visemes per locale, and the mouth pass over a body frame.

The picture of a shot (its "body": backdrop and figures) is shared by every locale; only the mouths
differ. A line's mouth follows a :class:`VisemeTrack`: the phonemes espeak-ng says it with, in the
locale's voice, with their times (from libespeak-ng's synthesis callback), each mapped to one of a few
mouth shapes and scaled to the time the line's voice takes in its slot. A :class:`LipSync` draws the
shape of the moment over the speaker's mouth box; :class:`DrawnLipSync` is the animatic's, and a neural
model on GPU workers can take its place.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from reelfork.generation.render.drawing import Picture, hex_color, rgb_to_yuv420, split
from reelfork.generation.render.encoding import SAMPLE_RATE
from reelfork.generation.render.request import RenderError
from reelfork.generation.render.visemes import LEVEL_RATE, POSES, STEPS, Cue, Viseme, VisemeTrack, pose
from reelfork.generation.render.voice import EspeakSynthesizer, primary
from reelfork.narrative.story import Voice

__all__ = [
    "Cue",
    "DrawnLipSync",
    "LipSync",
    "MouthBox",
    "Viseme",
    "VisemeTrack",
    "line_track",
    "phoneme_times",
    "track_of",
    "viseme_of",
]

# -- phonemes to visemes ----------------------------------------------------------------------

VISEMES: dict[str, Viseme] = {
    # espeak-ng's phoneme mnemonics, by their first letter; pauses and stress marks are rest.
    "_": "rest", "'": "rest", ",": "rest", "%": "rest", "=": "rest", ":": "rest", ";": "rest",
    "m": "closed", "b": "closed", "p": "closed",
    "f": "fv", "v": "fv",
    "a": "open", "A": "open", "&": "open", "V": "mid", "@": "mid", "3": "mid",
    "e": "mid", "E": "mid", "I": "wide", "i": "wide", "y": "round",
    "o": "round", "O": "round", "u": "round", "U": "round", "w": "round", "W": "round", "Y": "round",
    "s": "wide", "z": "wide", "S": "wide", "Z": "wide", "j": "wide", "C": "wide", "c": "wide",
    "t": "mid", "d": "mid", "n": "mid", "l": "mid", "r": "mid", "R": "mid", "T": "mid", "D": "mid", "N": "mid",
    "k": "mid", "g": "mid", "x": "mid", "X": "mid", "h": "mid", "Q": "mid", "?": "rest",
}
"""The base table: a phoneme by its first letter."""

LOCALE_VISEMES: dict[str, dict[str, Viseme]] = {
    # Mandarin (cmn-latn-pinyin): finals are named as in pinyin; a medial u or ü rounds the lips first.
    "zh": {
        "ua": "round", "uo": "round", "uai": "round", "uei": "round", "uan": "round", "uen": "round",
        "y": "round", "ye": "round", "yn": "round", "ai": "open", "ao": "open", "an": "open", "ang": "open",
        "ei": "mid", "en": "mid", "eng": "mid", "ou": "round", "ong": "round", "iou": "round",
        "ts.h": "wide", "ts.": "wide", "tsh": "wide", "ts": "wide", "s.": "wide", "z.": "mid",
    },
    # English: diphthongs start open or mid and are named by that start; the syllabic r is mid.
    "en": {"aI": "open", "aU": "open", "oU": "round", "OI": "round", "eI": "mid", "3:": "mid", "tS": "wide",
           "dZ": "wide"},
    # Spanish: the tap and trill are quick, barely visible.
    "es": {"r": "mid", "rr": "mid", "B": "closed", "D": "mid", "Q": "mid"},
}
"""Per-locale overrides for whole phoneme names, tried before the base table."""


def viseme_of(phoneme: str, locale: str) -> Viseme:
    """The mouth shape of one espeak-ng phoneme in ``locale``."""
    found = LOCALE_VISEMES.get(primary(locale), {}).get(phoneme)
    if found is not None:
        return found
    return VISEMES.get(phoneme[:1], "mid") if phoneme else "rest"


def track_of(phonemes: list[tuple[float, str]], locale: str, end: float) -> VisemeTrack:
    """Visemes from phoneme events ``(seconds, name)``, consecutive equal shapes merged, ending at ``end``."""
    cues: list[Cue] = []
    for start, name in phonemes:
        shape = viseme_of(name, locale)
        if start >= end:
            break
        if cues and cues[-1].start == start:
            cues[-1] = Cue(start=start, viseme=shape)  # a pause marker and a phoneme at the same time: the phoneme
        elif not cues or cues[-1].viseme != shape:
            cues.append(Cue(start=start, viseme=shape))
    return VisemeTrack(cues=tuple(cues), end=end)


# -- espeak-ng's phoneme events ------------------------------------------------------------------

LIBRARY = "libespeak-ng.so.1"
_SYNCHRONOUS, _PHONEME_EVENTS, _UTF8 = 2, 1, 1
_RATE, _PITCH = 1, 3
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _VoiceProperties(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class _Espeak:
    library: ctypes.CDLL
    callback: object
    events: list[tuple[float, str]]


_lock = threading.Lock()
"""libespeak-ng keeps one global synthesis state."""


@cache
def _espeak() -> _Espeak:
    try:
        library = ctypes.CDLL(LIBRARY)
    except OSError as error:
        raise RenderError(f"{LIBRARY} not found; install it (Debian: apt-get install libespeak-ng1)") from error
    if library.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS) <= 0:
        raise RenderError("libespeak-ng failed to initialise (is espeak-ng-data installed?)")
    events: list[tuple[float, str]] = []

    def heard(_wave: object, _count: int, event: ctypes._Pointer[_Event]) -> int:
        index = 0
        while event[index].type != _EVENT_LIST_TERMINATED:
            item = event[index]
            if item.type == _EVENT_PHONEME:
                events.append((item.audio_position / 1000, item.id.string.decode(errors="replace")))
            index += 1
        return 0

    callback = _Callback(heard)
    library.espeak_SetSynthCallback(callback)
    return _Espeak(library=library, callback=callback, events=events)


@cache
def phoneme_times(text: str, voice: str, pitch: int, rate: int) -> tuple[tuple[float, str], ...]:
    """The phonemes espeak-ng says ``text`` with (voice name as ``-v`` takes it), each with its start in seconds
    of the same speech the command line synthesises."""
    engine = _espeak()
    data = text.encode()
    with _lock:
        engine.events.clear()
        if engine.library.espeak_SetVoiceByName(voice.encode()) != 0:
            # A language code (en-gb) rather than a voice name: chosen by properties, as the command line does.
            wanted = _VoiceProperties(languages=voice.partition("+")[0].encode())
            if engine.library.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != 0:
                raise RenderError(f"libespeak-ng cannot load voice {voice!r}")
        engine.library.espeak_SetParameter(_PITCH, pitch, 0)
        engine.library.espeak_SetParameter(_RATE, rate, 0)
        engine.library.espeak_Synth(data, len(data) + 1, 0, 0, 0, _UTF8, None, None)
        engine.library.espeak_Synchronize()
        return tuple(engine.events)


def line_track(text: str, voice: Voice, language: str, heard: NDArray[np.float32], natural: float) -> VisemeTrack:
    """The mouth of ``text`` said by ``voice`` in ``language``: its phonemes as visemes, scaled from the speech's
    natural length (``natural`` seconds) to the length of ``heard`` (the speech as the clip plays it, at
    :data:`SAMPLE_RATE`: shorter when it was sped up to fit its slot), opening with its loudness."""
    spoken = len(heard) / SAMPLE_RATE
    if spoken <= 0 or natural <= 0 or not text.strip():
        return VisemeTrack()
    name = EspeakSynthesizer().resolve(voice, language)
    phonemes = list(phoneme_times(text, name, voice.pitch, voice.rate))
    track = track_of(phonemes, language, natural)
    track = track.scaled(spoken / natural) if spoken < natural else track
    return track.model_copy(update={"levels": loudness(heard)})


def loudness(samples: NDArray[np.float32]) -> tuple[float, ...]:
    """RMS per 1/:data:`LEVEL_RATE` s of ``samples`` (at :data:`SAMPLE_RATE`), over the loud end of the line's range."""
    step = SAMPLE_RATE // LEVEL_RATE
    count = len(samples) // step
    if count == 0:
        return ()
    windows = samples[: count * step].reshape(count, step).astype(np.float64)
    rms = np.sqrt((windows**2).mean(axis=1))
    top = float(np.percentile(rms, 95))
    if top <= 0:
        return tuple(0.0 for _ in range(count))
    return tuple(round(float(v), 2) for v in np.clip(rms / top, 0, 1))


# -- the mouth pass ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MouthBox:
    """Where a drawn figure's mouth is, in frame pixels (even), and the colours to draw it with."""

    x: int
    y: int
    width: int
    height: int
    lips: tuple[int, int, int]
    key: str
    """Identifies the figure and the shot, for caching the drawn shapes."""


class LipSync(Protocol):
    def sync(self, frame: Picture, mouth: MouthBox, track: VisemeTrack, seconds: float) -> None:
        """Draw the mouth ``seconds`` into the line's ``track`` over ``frame`` (yuv420p, the shared body), in place."""
        ...


class DrawnLipSync:
    """The animatic's mouths: each pose drawn once per figure and shot over the body's own pixels, then pasted."""

    LIMIT = 4096
    """Patches kept (a pose per figure and shot); beyond it the cache starts again."""

    def __init__(self) -> None:
        self.patches: dict[tuple[str, tuple[int, int]], tuple[Picture, Picture, Picture]] = {}

    def sync(self, frame: Picture, mouth: MouthBox, track: VisemeTrack, seconds: float) -> None:
        self.paste(frame, mouth, pose(track, seconds))

    def paste(self, frame: Picture, mouth: MouthBox, lips: tuple[int, int]) -> None:
        patch = self.patches.get((mouth.key, lips))
        if patch is None:
            if len(self.patches) >= self.LIMIT:
                self.patches.clear()
            patch = self.patches[(mouth.key, lips)] = self.draw(frame, mouth, lips)
        for plane, piece, scale in zip(split(frame), patch, (1, 2, 2), strict=True):
            top, left = mouth.y // scale, mouth.x // scale
            plane[top : top + piece.shape[0], left : left + piece.shape[1]] = piece

    def draw(self, frame: Picture, mouth: MouthBox, lips: tuple[int, int]) -> tuple[Picture, Picture, Picture]:
        """The mouth box of the body ``frame`` with the lips in ``lips`` drawn on it, as Y, U, V planes."""
        planes = []
        for plane, scale in zip(split(frame), (1, 2, 2), strict=True):
            top, left = mouth.y // scale, mouth.x // scale
            piece = plane[top : top + mouth.height // scale, left : left + mouth.width // scale].astype(np.float32)
            planes.append(piece if scale == 1 else piece.repeat(2, axis=0).repeat(2, axis=1))
        image = Image.fromarray(to_rgb(*planes), "RGB")
        draw_mouth(image, lips, mouth.lips)
        return split(rgb_to_yuv420(np.asarray(image, dtype=np.uint8)))


def to_rgb(luma: NDArray[np.float32], blue: NDArray[np.float32], red: NDArray[np.float32]) -> NDArray[np.uint8]:
    """BT.601 limited-range YCbCr (chroma at full resolution) to RGB: the inverse of the frames' conversion."""
    y, u, v = (luma - 16) * (255 / 219), blue - 128, red - 128
    rgb = np.stack([y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u], axis=2)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def draw_mouth(image: Image.Image, lips: tuple[int, int], color: tuple[int, int, int]) -> None:
    """Draw lips of pose ``lips`` (width, opening, in :data:`STEPS`) centred in ``image`` (the mouth box)."""
    scale = 3  # drawn larger and reduced, for smooth edges
    width, height = image.size
    big = image.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(big)
    w, h = width * scale, height * scale
    cx, cy = w / 2, h * 0.45
    half_w, half_h = w * lips[0] / STEPS / 2, h * lips[1] / STEPS / 2
    line = max(2, round(h * 0.09))
    if half_h < line:
        draw.rounded_rectangle((cx - half_w, cy - line / 2, cx + half_w, cy + line / 2), radius=line / 2, fill=color)
    else:
        box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        draw.ellipse(box, fill=color)
        inner = (box[0] + line, box[1] + line, box[2] - line, box[3] - line)
        if inner[2] > inner[0] and inner[3] > inner[1]:
            draw.ellipse(inner, fill=(58, 22, 28))
            if lips[0] / STEPS > 0.4:
                teeth = Image.new("L", big.size, 0)
                ImageDraw.Draw(teeth).ellipse(inner, fill=255)
                band = Image.new("L", big.size, 0)
                ImageDraw.Draw(band).rectangle((0, 0, w, inner[1] + (inner[3] - inner[1]) * 0.28), fill=255)
                big.paste((238, 234, 226), (0, 0), Image.fromarray(np.minimum(np.asarray(teeth), np.asarray(band))))
    image.paste(big.reduce(scale))


REST = (round(POSES["rest"][0] * STEPS), round(POSES["rest"][1] * STEPS))
"""The pose of a mouth at rest."""


def lip_color(skin: str) -> tuple[int, int, int]:
    """Lips a little darker and redder than the skin."""
    r, g, b = hex_color(skin)
    return round(r * 0.72 + 40), round(g * 0.45), round(b * 0.5)

