"""One viewer's clip from a shared picture: the picture is rendered once per look, the voice per viewer.

The content key is factored. What changes pixels (the scene without names or language, the persona's
look, the profile) keys the picture; the viewer's name and locale only change the voice and the
subtitles, which are cheap. So:

1. :func:`line_slots` gives each line a fixed slot on the picture's timeline: as long as its longest
   locale speaks it with the longest allowed name;
2. :func:`picture_request` renders the picture to those slots, without any text in it (the visible
   AI mark stays);
3. :func:`assemble` lays one viewer's voice on the slots (a line longer than its slot is sped up to
   fit), copies the picture's video stream untouched, and writes an MP4 with the AIGC label and a
   C2PA manifest, plus the WebVTT subtitles in the viewer's locale (speaker names live there).

Per-line speech is cached by content key (:class:`LineVoices`): a line that does not name the
protagonist is synthesised once per locale and reused for every name.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer, OutputContainer
from numpy.typing import NDArray
from pydantic import BaseModel
from reelfork.generation.production.delivery import replace_text, webvtt_text
from reelfork.generation.render.encoding import (
    FAST_START,
    SAMPLE_RATE,
    FileSigner,
    copy_video,
    partial_path,
    put_in_place,
    video_like,
)
from reelfork.generation.render.labels import AIGC_KEY, PRODUCER, LikenessRelease, aigc_label, likeness_releases
from reelfork.generation.render.lipsync import line_track
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.request import RenderError, RenderRequest
from reelfork.generation.render.soundtrack import LEAD_IN, PAUSE, slot_samples
from reelfork.generation.render.visemes import VisemeTrack
from reelfork.generation.render.voice import Synthesizer, bible_for, iso_639_2, neutral_voice
from reelfork.narrative.locales import localized
from reelfork.narrative.story import NARRATOR, Bible, Line, Scene, Story, Voice, fill_scene

__all__ = ["Assembled", "LineVoices", "assemble", "clip_key", "line_slots", "mouth_tracks", "picture_key",
           "picture_request"]


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _dumped(model: BaseModel) -> object:
    return model.model_dump(mode="json")


class LineVoices:
    """Speech per line, cached by content key (text, voice, locale) in memory and, given a folder, on disk."""

    def __init__(self, synthesizer: Synthesizer, folder: Path | None = None) -> None:
        self.synthesizer = synthesizer
        self.folder = folder
        self.memory: dict[str, NDArray[np.float32]] = {}
        self.encoded: dict[str, list[tuple[int, bytes]]] = {}
        self.synthesized = 0
        self.reused = 0

    def speech(self, text: str, voice: Voice, locale: str) -> NDArray[np.float32]:
        """Mono samples at :data:`SAMPLE_RATE`."""
        return self.keyed(text, voice, locale)[1]

    def keyed(self, text: str, voice: Voice, locale: str) -> tuple[str, NDArray[np.float32]]:
        """The speech's content key, and the speech."""
        key = digest(text, _dumped(voice), locale)
        return key, self._speech(key, text, voice, locale)

    def _speech(self, key: str, text: str, voice: Voice, locale: str) -> NDArray[np.float32]:
        found = self.memory.get(key)
        path = self.folder / f"{key}.f32" if self.folder is not None else None
        if found is None and path is not None and path.exists():
            found = np.fromfile(path, dtype=np.float32)
            self.memory[key] = found
        if found is not None:
            self.reused += 1
            return found
        samples = self.synthesizer.synthesize(text, voice, locale).resampled(SAMPLE_RATE).samples
        self.synthesized += 1
        self.memory[key] = samples
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
            samples.tofile(temporary)
            os.replace(temporary, path)
        return samples

    def line(self, line: Line, bible: Bible, locale: str) -> NDArray[np.float32]:
        return self.keyed_line(line, bible, locale)[1]

    def keyed_line(self, line: Line, bible: Bible, locale: str) -> tuple[str, NDArray[np.float32]]:
        voice = neutral_voice(locale) if line.speaker == NARRATOR else bible.character(line.speaker).voice
        return self.keyed(line.text, voice, locale)

    def packets(self, key: str, samples: NDArray[np.float32]) -> list[tuple[int, bytes]]:
        """``samples`` as AAC packets (pts, bytes), encoded once per content key (memory only)."""
        found = self.encoded.get(key)
        if found is None:
            found = self.encoded[key] = encode_aac(samples)
        return found


def line_slots(story: Story, scene: Scene, voices: LineVoices) -> dict[str, float]:
    """Seconds each line holds the picture: its longest speech over the story's locales, said with the
    longest allowed name (authored translations where there are, the source text elsewhere)."""
    name = story.persona.slot_name() if story.persona is not None else ""
    longest: dict[str, int] = {}
    for locale in story.offered_locales():
        text, _ = localized(story, scene, locale)
        text = fill_scene(text, name)
        bible = bible_for(story.bible, locale, story.language)
        for line in text.lines:
            longest[line.id] = max(longest.get(line.id, 0), len(voices.line(line, bible, locale)))
    return {line_id: samples / SAMPLE_RATE for line_id, samples in longest.items()}


def picture_key(
    story: Story, scene: Scene, look: str | None, profile: RenderProfile, slots: dict[str, float], locale: str
) -> str:
    """What the picture depends on, and nothing else: never the viewer's name; the locale only through the mouths."""
    return digest(_dumped(scene), _dumped(story.bible_for(look)), _dumped(profile), slots, locale)


def mouth_tracks(
    story: Story, scene: Scene, locale: str, slots: dict[str, float], voices: LineVoices
) -> dict[str, VisemeTrack]:
    """Each spoken line's mouth in ``locale``: the visemes of the line said with the persona's default name, fitted
    to its slot as :func:`assemble` fits the voice. A viewer with another name hears their name over those lips;
    every name shares one picture."""
    name = story.persona.name if story.persona is not None else ""
    text, _ = localized(story, scene, locale)
    text = fill_scene(text, name)
    bible = bible_for(story.bible, locale, story.language)
    tracks: dict[str, VisemeTrack] = {}
    for line in text.lines:
        if line.speaker == NARRATOR:
            continue
        speech = voices.line(line, bible, locale)
        heard = fitted(speech, slot_samples(line, 0, slots, SAMPLE_RATE))
        tracks[line.id] = line_track(line.text, bible.character(line.speaker).voice, locale, heard,
                                     len(speech) / SAMPLE_RATE)
    return tracks


def clip_key(picture: str, locale: str, name: str) -> str:
    """One viewer's assembled clip: the picture (scene, look, profile, the mouths' locale) with a locale and a name."""
    return digest(picture, locale, name)


def picture_request(
    story: Story,
    scene: Scene,
    look: str | None,
    profile: RenderProfile,
    slots: dict[str, float],
    output: Path,
    mouths: dict[str, VisemeTrack] | None = None,
) -> RenderRequest:
    """The shared picture's render: no burned-in text, no sound, every line in its slot, the persona in ``look``,
    the lips moving to ``mouths`` (:func:`mouth_tracks`: the picture's locale).

    The picture's sound would never be served (each viewer's clip carries their own voice), so none is
    synthesised or encoded: the timeline is exactly the slots'. It never continues a previous clip's last
    frame: a shared picture must not depend on the path that led to its scene (condition it on cast
    references instead, see :mod:`reelfork.generation.render.stills`)."""
    name = story.persona.slot_name() if story.persona is not None else ""
    return RenderRequest(
        scene=fill_scene(scene, name),
        bible=story.bible_for(look),
        language=story.language,
        profile=profile,
        output=output,
        line_seconds=slots,
        mouths=mouths,
        captions=False,
        voice=False,
    )


@dataclass(frozen=True)
class Assembled:
    path: Path
    subtitles: Path
    """WebVTT in the viewer's locale, beside the clip."""
    scene: Scene
    """The scene as the viewer reads it: their locale, their name."""
    machine_translated: tuple[str, ...]
    """Text keys with no authored translation (they kept the source text here)."""


def fitted(samples: NDArray[np.float32], slot: int) -> NDArray[np.float32]:
    """Speech no longer than its slot: a longer one is sped up (resampled) to fit exactly."""
    if len(samples) <= slot:
        return samples
    positions = np.linspace(0, len(samples) - 1, slot)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def viewer_bible(story: Story, locale: str, name: str) -> Bible:
    """Voices speaking ``locale``; the persona's character called by the viewer's name (for subtitles)."""
    bible = bible_for(story.bible, locale, story.language)
    if story.persona is None:
        return bible
    characters = [
        c.model_copy(update={"name": name}) if c.id == story.persona.character else c for c in bible.characters
    ]
    return bible.model_copy(update={"characters": characters})


@dataclass(frozen=True)
class ViewerVoice:
    """One viewer's voice on a picture's timeline: what their clip or stream lays on the shared picture."""

    text: Scene
    """The scene as the viewer reads it: their locale, their name."""
    missing: tuple[str, ...]
    """Text keys with no authored translation."""
    cues: list[tuple[str, float, float, str, str]]
    """Subtitle cues: (id, start, end, speaker, text)."""
    spoken: list[tuple[int, str, NDArray[np.float32]]]
    """Each line's speech: (first sample, content key, samples), fitted into its slot."""


def viewer_voice(
    story: Story, scene: Scene, locale: str, name: str, slots: dict[str, float], voices: LineVoices, length: int
) -> ViewerVoice:
    """The viewer's lines, each spoken into its slot on a timeline of ``length`` samples, and their subtitles."""
    if locale not in story.offered_locales():
        raise RenderError(f"locale {locale!r} is not offered by story {story.id!r}: {story.offered_locales()}")
    text, missing = localized(story, scene, locale)
    text = fill_scene(text, name)
    bible = viewer_bible(story, locale, name)
    cues: list[tuple[str, float, float, str, str]] = []
    spoken: list[tuple[int, str, NDArray[np.float32]]] = []
    position = round(LEAD_IN * SAMPLE_RATE)
    for line in text.lines:
        slot = slot_samples(line, 0, slots, SAMPLE_RATE)
        if slot == 0:
            raise RenderError(f"line {line.id!r} of scene {scene.id!r} has no slot on the picture's timeline")
        key, speech = voices.keyed_line(line, bible, locale)
        speech = fitted(speech, slot)[: max(0, length - position)]
        spoken.append((position, key, speech))
        speaker = "" if line.speaker == NARRATOR else bible.character(line.speaker).name
        end = position + len(speech)
        cues.append((f"{scene.id}/{line.id}", position / SAMPLE_RATE, end / SAMPLE_RATE, speaker, line.text))
        position += slot + round(PAUSE * SAMPLE_RATE)
    return ViewerVoice(text=text, missing=tuple(missing), cues=cues, spoken=spoken)


def assemble(
    picture: Path,
    story: Story,
    scene: Scene,
    locale: str,
    name: str,
    slots: dict[str, float],
    voices: LineVoices,
    output: Path,
    signer: FileSigner | None = None,
    producer: str = PRODUCER,
) -> Assembled:
    """The viewer's MP4 at ``output`` (the picture's video copied, their voice, the AIGC label, signed when a
    signer is given) and ``<stem>.vtt`` beside it. ``name`` must already be checked
    (:func:`reelfork.narrative.persona.check_name`)."""
    if locale not in story.offered_locales():
        raise RenderError(f"locale {locale!r} is not offered by story {story.id!r}: {story.offered_locales()}")
    with av.open(str(picture)) as source:
        video = source.streams.video[0]
        frames = video.frames
        rate = float(video.average_rate or 24)
    length = round(frames / rate * SAMPLE_RATE)
    voice = viewer_voice(story, scene, locale, name, slots, voices, length)
    text, missing, cues, spoken = voice.text, voice.missing, voice.cues, voice.spoken
    subtitles = output.with_suffix(".vtt")
    output.parent.mkdir(parents=True, exist_ok=True)
    replace_text(subtitles, webvtt_text(cues))
    label = aigc_label(digest(picture.name, locale, name, [c[4] for c in cues]), producer=producer)
    metadata = {AIGC_KEY: label.to_json(), "title": text.title}
    speakers = {line.speaker for line in text.lines}
    likenesses = likeness_releases(c for c in story.bible.characters if c.id in speakers)
    write_clip(picture, voice_packets(spoken, length, voices), locale, metadata, output, signer, likenesses)
    return Assembled(path=output, subtitles=subtitles, scene=text, machine_translated=missing)


def write_clip(
    picture: Path,
    audio: list[tuple[int, bytes]],
    locale: str,
    metadata: dict[str, str],
    output: Path,
    signer: FileSigner | None,
    likenesses: Sequence[LikenessRelease] = (),
) -> None:
    """Mux the picture's video packets (copied, never re-encoded) with the voice's AAC packets (``(pts, bytes)``
    at :data:`SAMPLE_RATE`), the audio tagged with ``locale``'s language."""
    temporary = partial_path(output)
    try:
        with av.open(str(picture)) as source, av.open(str(temporary), "w", format="mp4", options=FAST_START) as sink:
            remux(source, sink, metadata, audio, locale)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    put_in_place(temporary, output, signer, likenesses=likenesses)


AAC_FRAME = 1024
"""Samples per AAC-LC packet."""


def remux(
    source: InputContainer, container: OutputContainer, metadata: dict[str, str], audio: list[tuple[int, bytes]],
    locale: str,
) -> None:
    """``source``'s video packets, copied (never re-encoded), and the voice's AAC packets (``(pts, bytes)`` at
    :data:`SAMPLE_RATE`, tagged with ``locale``'s language) into ``container``, with ``metadata``."""
    video = video_like(source, container, metadata)
    audio_out = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
    audio_out.codec_context.extradata = aac_config()
    audio_out.metadata["language"] = iso_639_2(locale)
    copy_video(source, container, video)
    for pts, data in audio:
        audio_packet = av.Packet(data)
        audio_packet.pts = audio_packet.dts = pts
        audio_packet.duration = AAC_FRAME
        audio_packet.time_base = Fraction(1, SAMPLE_RATE)
        audio_packet.stream = audio_out
        container.mux(audio_packet)


def encoder() -> av.AudioCodecContext:
    # The fast coder: about half the default one's time, and speech over silence needs no more.
    context = av.AudioCodecContext.create("aac", "w")
    context.sample_rate, context.layout, context.format = SAMPLE_RATE, "mono", "fltp"
    context.options = {"aac_coder": "fast"}
    context.open()
    return context


@cache
def aac_config() -> bytes:
    """The AudioSpecificConfig every packet from :func:`encode_aac` decodes with."""
    return bytes(encoder().extradata or b"")


def encode_aac(samples: NDArray[np.float32]) -> list[tuple[int, bytes]]:
    """``samples`` as AAC on their own: (pts, bytes) per packet, the priming packet first (pts -1024)."""
    context = encoder()
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate, frame.pts = SAMPLE_RATE, 0
    packets = [*context.encode(frame), *context.encode(None)]
    return [(int(packet.pts or 0), bytes(packet)) for packet in packets]


def voice_packets(
    spoken: list[tuple[int, str, NDArray[np.float32]]], length: int, voices: LineVoices
) -> list[tuple[int, bytes]]:
    """The voice track as AAC packets, spliced from segments encoded once each and cached.

    The track is cut on the AAC frame grid one frame before each line starts. A line is followed by
    at least :data:`PAUSE` of silence (more than two frames), so every cut falls in silence on both
    sides, and an encoder's packets there depend on nothing but zeros: a segment encoded alone decodes
    exactly as the same stretch of a whole-track encoding. A segment holds one line at a fixed offset,
    so a line that does not name the viewer is encoded once per locale and slot, and reused by every viewer.
    """
    end = -(-length // AAC_FRAME) * AAC_FRAME
    cuts = [0, *(max(0, (start // AAC_FRAME - 1) * AAC_FRAME) for start, _, _ in spoken), end]
    pieces: list[tuple[str, int, NDArray[np.float32]]] = [("silence", 0, np.zeros(0, dtype=np.float32))]
    pieces += [(key, start, speech) for start, key, speech in spoken]
    packets: list[tuple[int, bytes]] = []
    for (key, start, speech), first, last in zip(pieces, cuts[:-1], cuts[1:], strict=True):
        size = last - first
        if size <= 0:
            continue
        offset = start - first if len(speech) else 0
        segment_key = digest(key, len(speech), offset, size)
        encoded = voices.encoded.get(segment_key)
        if encoded is None:
            segment = np.zeros(size, dtype=np.float32)
            segment[offset : offset + len(speech)] = speech[: size - offset]
            encoded = voices.packets(segment_key, segment)
        lowest = -AAC_FRAME if not packets else 0  # the stream's priming packet, once, at its start
        packets += [(first + pts, data) for pts, data in encoded if lowest <= pts < size]
    return packets
