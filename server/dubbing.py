"""Each viewer's clip and text: the scene's shared picture with their voice, subtitles and name, in their locale.

The picture is rendered by a worker once per (scene, look, profile); what varies per viewer is assembled
here (``generation/render/dub.py``: per-line speech cached by content key, the video stream copied, the
voice muxed, signed), in a thread so the event loop never waits on it. Assembled clips are cached on disk
by (picture, locale, name), so a second viewer with the same name, look and locale reuses the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reelfork.generation.render.dub import LineVoices, assemble, clip_key, digest, viewer_bible
from reelfork.generation.render.request import RenderError
from reelfork.generation.render.voice import EspeakSynthesizer
from reelfork.generation.writer.checks import WordListPolicy, read_word_list
from reelfork.narrative.locales import localized
from reelfork.narrative.persona import InvalidName, check_name
from reelfork.narrative.story import NARRATOR, Scene, Story, fill_scene
from reelfork.server.components import make_signer, renderer_options
from reelfork.server.settings import Settings
from reelfork.server.store import StoredClip

__all__ = ["Dubbing", "ViewerClip", "ViewerText", "checked_name"]

VOICES = "voices"
"""The media dir's folder of per-line speech, by content key (the workers size the picture's slots from it)."""
STREAMS = "streams"
"""The media dir's folder of the pictures' streams: ``<clip key>/init.mp4`` and ``<clip key>/<index>.m4s``."""
VIEWERS = "viewers"
"""The media dir's folder of assembled clips and their WebVTT, by (picture, locale, name)."""


@dataclass(frozen=True)
class ViewerLine:
    id: str
    speaker: str
    text: str
    machine_translated: bool


@dataclass(frozen=True)
class ViewerText:
    """The scene as one viewer reads it."""

    scene: Scene
    lines: list[ViewerLine]


@dataclass(frozen=True)
class ViewerClip:
    file: str
    """The MP4, relative to the media dir."""
    subtitles: str
    """The WebVTT, relative to the media dir."""


Machine = dict[str, str] | None
"""A machine translation of one scene into one locale: text key → text."""


def with_machine(story: Story, locale: str, machine: Machine) -> Story:
    """The story with ``machine`` texts where its ``locale`` table has none (authored translations win)."""
    if not machine or locale == story.language:
        return story
    table = {**machine, **story.translations.get(locale, {})}
    return story.model_copy(update={"translations": {**story.translations, locale: table}})


def checked_name(story: Story, name: str | None, policy: WordListPolicy) -> str:
    """The name the viewer plays with (the persona's default when none is given), or :class:`InvalidName`."""
    persona = story.persona
    if persona is None:
        if name is not None:
            raise InvalidName(f"story {story.id!r} has no persona to name")
        return ""
    if name is None:
        return persona.name
    checked = check_name(name, persona.max_name)
    if policy.check([checked]):
        raise InvalidName("this name is not allowed by the content policy")
    return checked


class Dubbing:
    def __init__(self, settings: Settings) -> None:
        self.media = settings.media_dir
        self.voices = LineVoices(EspeakSynthesizer(), self.media / VOICES)
        self.signer = make_signer(renderer_options(settings))
        words = settings.writer_blocked_words
        self.policy = WordListPolicy(read_word_list(words.read_text(encoding="utf-8"))) if words else WordListPolicy()

    def text(self, story: Story, scene: Scene, locale: str, name: str, machine: Machine = None) -> ViewerText:
        """``scene`` in ``locale`` with ``name`` filled in: the authored table, else the ``machine`` translation
        (text key → text; the lines taken from it say ``machine_translated``), else the source text."""
        translated, _missing = localized(with_machine(story, locale, machine), scene, locale)
        machine_keys = {key for key in (machine or {}) if key not in story.translations.get(locale, {})}
        filled = fill_scene(translated, name)
        bible = viewer_bible(story, locale, name)
        lines = [
            ViewerLine(
                id=line.id,
                speaker="" if line.speaker == NARRATOR else bible.character(line.speaker).name,
                text=line.text,
                machine_translated=f"{scene.id}/line:{line.id}" in machine_keys,
            )
            for line in filled.lines
        ]
        return ViewerText(scene=filled, lines=lines)

    def clip(
        self, story: Story, scene: Scene, picture: StoredClip, locale: str, name: str, machine: Machine = None
    ) -> ViewerClip:
        """The viewer's MP4 and WebVTT (assembled now, or found from an earlier viewer). Blocking: run in a thread."""
        if picture.slots is None:
            raise RenderError(f"clip {picture.key} is no shared picture (it has no line slots)")
        found = self.assembled(picture, locale, name, machine)
        if found is None:
            clip = self._paths(picture, locale, name, machine)
            assemble(self.media / picture.file, with_machine(story, locale, machine), scene, locale, name,
                     picture.slots, self.voices, self.media / clip.file, self.signer)
            found = clip
        return found

    def assembled(self, picture: StoredClip, locale: str, name: str, machine: Machine = None) -> ViewerClip | None:
        """The viewer's clip when an earlier viewer's assembly made it already (two file checks: no thread needed)."""
        clip = self._paths(picture, locale, name, machine)
        return clip if (self.media / clip.file).exists() and (self.media / clip.subtitles).exists() else None

    def _paths(self, picture: StoredClip, locale: str, name: str, machine: Machine) -> ViewerClip:
        return self.paths(picture.key, locale, name, machine)

    def paths(self, picture: str, locale: str, name: str, machine: Machine) -> ViewerClip:
        """Where the viewer's clip of the picture keyed ``picture`` goes; its stem names their stream too."""
        key = clip_key(picture, locale, name)
        if machine:
            key = digest(key, machine)
        relative = Path(VIEWERS) / f"{key}.mp4"
        return ViewerClip(file=str(relative), subtitles=str(relative.with_suffix(".vtt")))
