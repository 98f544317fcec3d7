"""Speech synthesis: a small protocol and the espeak-ng backend.

A character's :class:`~reelfork.narrative.story.Voice` names an espeak-ng voice (``en-us``,
optionally with a variant: ``en-us+f3``), a pitch and a rate. The request's
language wins over the voice's: a French scene spoken by a character whose voice
is ``en-us+f3`` is read by ``fr+f3`` with the character's pitch and rate.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from reelfork.generation.render.request import RenderError
from reelfork.narrative.story import Bible, Voice

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
TIMEOUT_SECONDS = 60.0
LIST_HINT = "list the installed voices with `espeak-ng --voices` (variants: `espeak-ng --voices=variant`)"


@dataclass(frozen=True)
class Speech:
    samples: NDArray[np.float32]
    """Mono, in [-1, 1]."""
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def resampled(self, sample_rate: int) -> Speech:
        """Linear-interpolation resampling: plenty for formant speech, and dependency-free."""
        if sample_rate == self.sample_rate or len(self.samples) == 0:
            return Speech(self.samples, sample_rate) if len(self.samples) == 0 else self
        count = round(len(self.samples) * sample_rate / self.sample_rate)
        positions = np.arange(count, dtype=np.float64) * (self.sample_rate / sample_rate)
        source = np.arange(len(self.samples), dtype=np.float64)
        return Speech(np.interp(positions, source, self.samples).astype(np.float32), sample_rate)


class Synthesizer(Protocol):
    def synthesize(self, text: str, voice: Voice, language: str) -> Speech: ...


class Silence:
    """Says nothing: for a render without voice, whose lines hold their planned slots in silence."""

    def synthesize(self, text: str, voice: Voice, language: str) -> Speech:
        return Speech(np.zeros(0, dtype=np.float32), SILENT_RATE)


SILENT_RATE = 24_000


class UnknownVoiceError(RenderError):
    """The voice (or language) is not installed in the speech engine."""


def neutral_voice(language: str) -> Voice:
    """The narrator's voice: the language's default voice at default pitch and rate."""
    return Voice(voice=language)


@dataclass(frozen=True)
class VoiceCatalog:
    """What ``espeak-ng --voices`` lists, keyed by the names ``-v`` accepts (lower case)."""

    languages: dict[str, frozenset[str]]
    """Voice name -> the primary language subtags it speaks (``cmn-latn-pinyin`` -> cmn, zh)."""
    variants: frozenset[str]

    def speaks(self, name: str, language: str) -> bool:
        return primary(language) in self.languages.get(name.lower(), frozenset())


def primary(language: str) -> str:
    return language.lower().replace("_", "-").split("-")[0]


@cache
def catalog(binary: str = ESPEAK) -> VoiceCatalog:
    """The installed voices; cached because it is cheap and cannot change under a running process."""
    languages: dict[str, frozenset[str]] = {}
    for row in _voice_rows(binary, "--voices"):
        # Pty Language Age/Gender VoiceName File (other-language priority)...
        code, file = row[1], row[4]
        others = re.findall(r"\(([^\s()]+)", " ".join(row[5:]))
        spoken = frozenset({primary(code), *(primary(other) for other in others)})
        # -v also accepts the "other languages" (plain "en", "zh") as names.
        for name in (code, file, file.split("/")[-1], *others):
            languages[name.lower()] = languages.get(name.lower(), frozenset()) | spoken
    variants = frozenset(row[4].split("/")[-1].lower() for row in _voice_rows(binary, "--voices=variant"))
    return VoiceCatalog(languages=languages, variants=variants)


def _voice_rows(binary: str, flag: str) -> list[list[str]]:
    result = subprocess.run([binary, flag], capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=True)
    return [line.split() for line in result.stdout.splitlines()[1:] if len(line.split()) >= 5]


class EspeakSynthesizer:
    """espeak-ng through its command line: one short process per line, 100-300x real time."""

    def __init__(self, binary: str = ESPEAK) -> None:
        if shutil.which(binary) is None:
            raise RenderError(f"speech engine {binary!r} not found; install it (Debian: apt-get install espeak-ng)")
        self.binary = binary

    def resolve(self, voice: Voice, language: str) -> str:
        """The ``-v`` argument for this voice speaking ``language``."""
        voices = catalog(self.binary)
        name, _, variant = voice.voice.partition("+")
        if name.lower() not in voices.languages:
            raise UnknownVoiceError(f"unknown espeak-ng voice {voice.voice!r}; {LIST_HINT}")
        if variant and variant.lower() not in voices.variants:
            raise UnknownVoiceError(f"unknown espeak-ng voice variant {variant!r} in {voice.voice!r}; {LIST_HINT}")
        if not voices.speaks(name, language):
            if language.lower() not in voices.languages:
                raise UnknownVoiceError(f"espeak-ng has no voice for language {language!r}; {LIST_HINT}")
            log.debug("voice %s does not speak %s; using %s with its variant", voice.voice, language, language)
            name = language
        return f"{name}+{variant}" if variant else name

    def synthesize(self, text: str, voice: Voice, language: str) -> Speech:
        command = [self.binary, "-v", self.resolve(voice, language), "-p", str(voice.pitch), "-s", str(voice.rate)]
        # Text on stdin, so that a line starting with "-" is never read as an option.
        command += ["-b", "1", "--stdout"]
        try:
            result = subprocess.run(command, input=text.encode(), capture_output=True, timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as error:
            raise RenderError(
                f"espeak-ng took over {TIMEOUT_SECONDS:.0f} s for a {len(text)}-character line"
            ) from error
        message = result.stderr.decode(errors="replace").strip()
        if result.returncode != 0 or not result.stdout:
            if "does not exist" in message:
                raise UnknownVoiceError(f"espeak-ng cannot load voice {voice.voice!r}: {message}; {LIST_HINT}")
            raise RenderError(f"espeak-ng failed (exit {result.returncode}) for voice {voice.voice!r}: {message}")
        return parse_wav(result.stdout)


def parse_wav(data: bytes) -> Speech:
    """Parse 16-bit PCM WAV. espeak-ng's ``--stdout`` header has placeholder sizes
    (it streams), so the data chunk runs to the end of the input, not to its stated length."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RenderError("speech engine returned something that is not a WAV file")
    position = 12
    channels, sample_rate, bits = 1, 22050, 16
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        body = position + 8
        if chunk == b"fmt ":
            _, channels, sample_rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
        elif chunk == b"data":
            if bits != 16:
                raise RenderError(f"speech engine returned {bits}-bit audio; expected 16-bit PCM")
            pcm = data[body : min(body + size, len(data))]
            pcm = pcm[: len(pcm) - len(pcm) % (2 * channels)]
            samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).mean(axis=1)
            return Speech((samples / 32768.0).astype(np.float32), int(sample_rate))
        position = body + size + size % 2
    raise RenderError("speech engine returned a WAV file without audio data")


LOCALE_VOICES: dict[str, str] = {"zh": "cmn-latn-pinyin", "en": "en-us"}
"""espeak-ng voices for locales whose plain code is not the best voice (NOTES: Mandarin)."""

ISO_639_2: dict[str, str] = {
    "en": "eng", "es": "spa", "zh": "chi", "fr": "fre", "de": "ger", "pt": "por", "it": "ita", "ja": "jpn",
    "ko": "kor", "ru": "rus", "ar": "ara", "hi": "hin",
}
"""MP4 track languages are ISO 639-2 codes."""


def iso_639_2(locale: str) -> str:
    return ISO_639_2.get(primary(locale), primary(locale))


def voice_name(locale: str) -> str:
    return LOCALE_VOICES.get(primary(locale), locale.lower())


def bible_for(bible: Bible, locale: str, source: str) -> Bible:
    """The bible with each character's voice speaking ``locale``: pitch and rate kept, so a character
    sounds like themself in every language."""
    if primary(locale) == primary(source):
        return bible
    characters = [
        c.model_copy(update={"voice": c.voice.model_copy(update={"voice": voice_name(locale)})})
        for c in bible.characters
    ]
    return bible.model_copy(update={"characters": characters})
