"""Linear production: a series in, finished episodes out, dubbed and subtitled per locale and labelled.

The pipeline, stage by stage (each stage's outputs are content-addressed files, so a run that is
stopped anywhere and started again reuses what was finished and redoes nothing):

1. translate every scene into every locale, keeping line IDs: the story's authored tables first, the
   writer's model for what they lack (listed under ``machine_translated`` in the manifest); the
   persona, if any, keeps its default name;
2. plan the dub: each line holds the screen as long as its longest locale speaks it;
3. render each scene's picture once, to that plan, without burned-in text: every locale shares it;
4. per episode and locale, lay the locale's voices on the plan, write its WebVTT, and mux the shared
   picture, the voice track and a subtitle track per locale into one MP4 with the AIGC label, signed
   with C2PA; then package it as HLS (fMP4);
5. write ``manifest.json``: episodes, durations, locales, checksums, labels.

Drafting from a premise (:mod:`reelfork.generation.production.drafting`) happens before stage 1 and is kept
the same way.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from reelfork.generation.production.delivery import (
    Cue,
    clip_offsets,
    concatenate_video,
    mux_episode,
    package_hls,
    replace_text,
    speaker_name,
    webvtt_text,
    write_wav,
)
from reelfork.generation.production.drafting import DraftError, Premise, draft_series
from reelfork.generation.render.encoding import SAMPLE_RATE, FileSigner
from reelfork.generation.render.labels import (
    AIGC_KEY,
    PRODUCER,
    LikenessRelease,
    aigc_label,
    likeness_releases,
    read_aigc,
)
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.request import Renderer, RenderError, RenderRequest
from reelfork.generation.render.soundtrack import Soundtrack, soundtrack
from reelfork.generation.render.voice import (
    Synthesizer,
    UnknownVoiceError,
    bible_for,
    catalog,
    primary,
    voice_name,
)
from reelfork.generation.writer.request import SceneWriter, WriteError
from reelfork.generation.writer.translation import JsonCompleter, TranslateRequest, translate, translated_scene
from reelfork.generation.writer.translation import slots as translation_slots
from reelfork.narrative.locales import localized
from reelfork.narrative.series import Series, SeriesError, series_of
from reelfork.narrative.story import Scene, Story, fill_scene

log = logging.getLogger(__name__)

STAGES = ("draft", "translate", "render", "assemble")
class ProductionError(Exception):
    """A production that cannot go on; finished work stays where it is for the next run."""


class Progress(Protocol):
    """Hears about each stage's work: the CLI draws bars, the worker writes the status to Redis."""

    def stage(self, name: str, total: int) -> None: ...

    def advance(self, name: str, done: int = 1, note: str = "") -> None: ...


class SilentProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, done: int = 1, note: str = "") -> None:
        pass


@dataclass
class Counters:
    """What this run did, kept in ``runs.json`` as it goes, so even a killed run leaves its count."""

    drafted: int = 0
    drafts_reused: int = 0
    translated: int = 0
    translations_reused: int = 0
    rendered: int = 0
    renders_reused: int = 0
    assembled: int = 0
    assembled_reused: int = 0
    untranslated_texts: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage."""


@dataclass(frozen=True)
class Components:
    """The parts a production runs on: the same writer, translator model, renderer and voices as play."""

    renderer: Renderer
    renderer_name: str
    synthesizer: Synthesizer
    writer: SceneWriter | None = None
    completer: JsonCompleter | None = None
    """Translates (the writer's model); None produces only the source locale."""
    writer_model: str = ""
    signer: FileSigner | None = None
    producer: str = PRODUCER


@dataclass(frozen=True)
class Plan:
    """One scene, ready to render: the scene in every locale and how long each line holds the screen."""

    scene: Scene
    localized: dict[str, Scene]
    line_seconds: dict[str, float]
    untranslated: dict[str, tuple[str, ...]]
    machine_translated: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per locale, the slots (``title``, ``line:<id>``, ``choice:<id>``) the writer's model translated because
    the story's table for that locale has no authored text for them."""


def digest(*parts: Any) -> str:
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_text(path, json.dumps(data, indent=2, ensure_ascii=False))


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def check_locales(locales: list[str], synthesizer_binary: str = "espeak-ng") -> list[str]:
    """The locales, deduplicated in order; an unknown one is an error that lists what is available."""
    if not locales:
        raise ProductionError("no locales: give at least one, e.g. --locales en,es,zh")
    voices = catalog(synthesizer_binary)
    result: list[str] = []
    for locale in locales:
        code = locale.strip()
        if not code or not all(part.isalnum() for part in code.split("-")):
            raise ProductionError(f"locale {locale!r} is not a language code like 'en', 'es' or 'pt-BR'")
        if voice_name(code) not in voices.languages and code.lower() not in voices.languages:
            known = sorted({name for name in voices.languages if len(name) <= 3})
            raise ProductionError(
                f"unknown locale {code!r}: no espeak-ng voice speaks it; available: {', '.join(known)}"
            )
        if code not in result:
            result.append(code)
    return result


@contextmanager
def disk_errors(what: str) -> Iterator[None]:
    """Turn a full disk into a :class:`ProductionError` that says what to do."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise ProductionError(
                f"disk full while {what} ({error.strerror}); free some space and run the same command again: "
                f"finished work is kept and reused"
            ) from error
        raise


class Production:
    """One series produced into ``folder``; ``cache`` holds the content-addressed work shared by runs."""

    def __init__(
        self,
        folder: Path,
        cache: Path,
        components: Components,
        profile: RenderProfile,
        locales: list[str],
        progress: Progress | None = None,
        translate_attempts: int = 2,
    ) -> None:
        self.folder = folder
        self.translate_attempts = translate_attempts
        self.cache = cache
        self.parts = components
        self.profile = profile
        self.locales = locales
        self.progress: Progress = progress or SilentProgress()
        self.counters = Counters()
        self.run_index = -1

    # -- the whole run ---------------------------------------------------------------------------

    def run(self, story: Story | None = None, premise: Premise | None = None) -> dict[str, Any]:
        """Produce the series; returns the manifest (also written to ``folder/manifest.json``)."""
        if (story is None) == (premise is None):
            raise ProductionError("give a story or a premise, not both")
        with disk_errors(f"preparing {self.folder}"):
            self.folder.mkdir(parents=True, exist_ok=True)
            self.cache.mkdir(parents=True, exist_ok=True)
            self.start_run()
        with self.timed("draft"):
            if premise is not None:
                story = self.draft(premise)
            assert story is not None
        try:
            series = series_of(story)
        except SeriesError as error:
            raise ProductionError(str(error)) from None
        if story.language not in self.locales and primary(story.language) not in map(primary, self.locales):
            log.info("source language %s is not among the locales; it is used only for the picture", story.language)
        with self.timed("translate"):
            plans = self.plan(series)
        with self.timed("render"):
            clips = self.render(series, plans)
        with self.timed("assemble"):
            episodes = [self.assemble(series, number, plans, clips) for number in range(1, len(series.episodes) + 1)]
        manifest = self.manifest(series, plans, episodes)
        with disk_errors("writing the manifest"):
            write_json(self.folder / "manifest.json", manifest)
        self.save_counters()
        return manifest

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.counters.seconds[stage] = round(
                self.counters.seconds.get(stage, 0.0) + time.perf_counter() - started, 3
            )
            self.save_counters()

    def start_run(self) -> None:
        runs = read_json(self.folder / "runs.json") or []
        runs.append({"started": time.time(), "counters": {}})
        self.run_index = len(runs) - 1
        write_json(self.folder / "runs.json", runs)

    def save_counters(self) -> None:
        runs = read_json(self.folder / "runs.json") or [{"started": time.time()}]
        runs[self.run_index]["counters"] = self.counters.__dict__
        with disk_errors("saving the run's counters"):
            write_json(self.folder / "runs.json", runs)

    # -- 0. draft --------------------------------------------------------------------------------

    def draft(self, premise: Premise) -> Story:
        writer = self.parts.writer
        if writer is None:
            raise ProductionError("drafting from a premise needs a writer")
        path = self.cache / "drafts" / f"{digest(premise.model_dump(mode='json'), self.parts.writer_model)}.json"
        kept = read_json(path) or []
        written = [Scene.model_validate(item["scene"]) for item in kept]
        self.counters.drafts_reused = len(written)
        self.progress.stage("draft", premise.episodes)

        def keep(scene: Scene, seconds: float) -> None:
            kept.append({"scene": scene.model_dump(mode="json"), "seconds": seconds})
            with disk_errors("keeping a drafted scene"):
                write_json(path, kept)
            self.counters.drafted += 1
            self.save_counters()
            self.progress.advance("draft", 0, note=f"{scene.id}: {scene.title}")

        def measure(scene: Scene) -> float:
            return soundtrack(scene, premise.bible, premise.language, self.parts.synthesizer).duration

        try:
            story = draft_series(premise, writer, measure, written, keep)
        except (DraftError, WriteError) as error:
            raise ProductionError(f"drafting stopped: {error}; the scenes written so far are kept") from None
        self.progress.advance("draft", premise.episodes)
        with disk_errors("writing the drafted story"):
            write_json(self.folder / "story.json", story.model_dump(mode="json"))
        return story

    # -- 1 and 2. translate and plan the dub ----------------------------------------------------

    def plan(self, series: Series) -> dict[str, Plan]:
        story = series.story
        scenes = series.scenes
        self.progress.stage("translate", len(scenes))
        plans: dict[str, Plan] = {}
        # A linear production has no viewer: the persona keeps its default name.
        name = story.persona.name if story.persona is not None else ""
        for scene in scenes:
            localized: dict[str, Scene] = {}
            untranslated: dict[str, tuple[str, ...]] = {}
            machine: dict[str, tuple[str, ...]] = {}
            for locale in self.locales:
                text, untranslated[locale], machine[locale] = self.localized(story, scene, locale)
                localized[locale] = fill_scene(text, name)
            plans[scene.id] = Plan(
                scene=fill_scene(scene, name),
                localized=localized,
                line_seconds=self.line_seconds(story, localized),
                untranslated={locale: keys for locale, keys in untranslated.items() if keys},
                machine_translated={locale: keys for locale, keys in machine.items() if keys},
            )
            self.progress.advance("translate", note=scene.id)
        return plans

    def localized(self, story: Story, scene: Scene, locale: str) -> tuple[Scene, tuple[str, ...], tuple[str, ...]]:
        """The scene in ``locale``: the story's authored table first, the writer's model for what it lacks.
        Returns the scene, the slots left untranslated and the slots the model translated."""
        if primary(locale) == primary(story.language):
            return scene, (), ()
        authored, missing = localized(story, scene, locale)
        if not missing:
            return authored, (), ()
        slots = frozenset(key.split("/", 1)[1] for key in missing)
        texts, untranslated = self.translated(story, scene, locale, slots)
        left = tuple(slot for slot in untranslated if slot in slots)
        return translated_scene(authored, texts), left, tuple(slot for slot in texts if slot not in left)

    def translated(
        self, story: Story, scene: Scene, locale: str, slots: frozenset[str]
    ) -> tuple[dict[str, str], tuple[str, ...]]:
        """The model's translation of the scene's ``slots`` (kept ones reused) and the slots it could not do."""
        if self.parts.completer is None:
            raise ProductionError(f"locale {locale!r} needs a translator, and this production has no writer model")
        key = digest(
            scene.model_dump(mode="json"),
            story.bible.model_dump(mode="json"),
            story.language,
            locale,
            sorted(slots),
            self.parts.writer_model,
        )
        path = self.cache / "translations" / f"{key}.json"
        kept = read_json(path)
        if kept is not None:
            self.counters.translations_reused += 1
            return dict(kept["texts"]), tuple(kept["untranslated"])
        request = TranslateRequest(
            scene=scene,
            bible=story.bible,
            source=story.language,
            target=locale,
            attempts=self.translate_attempts,
            only=slots,
        )
        result = translate(self.parts.completer, request)
        if result.untranslated:
            log.warning(
                "scene %s in %s: %d of %d texts kept their source text (%s)",
                scene.id,
                locale,
                len(result.untranslated),
                len(slots),
                "; ".join(result.problems[-3:]),
            )
        texts = {slot: text for slot, text in translation_slots(result.scene).items() if slot in slots}
        with disk_errors("keeping a translation"):
            write_json(path, {"texts": texts, "untranslated": result.untranslated, "problems": result.problems})
        self.counters.translated += 1
        self.counters.untranslated_texts += len(result.untranslated)
        self.save_counters()
        return texts, result.untranslated

    def line_seconds(self, story: Story, localized: dict[str, Scene]) -> dict[str, float]:
        """Each line's slot: the longest locale's speech (samples at the track's rate, exactly)."""
        slots: dict[str, int] = {}
        for locale, scene in localized.items():
            track = self.voices(story, scene, locale)
            for spoken in track.lines:
                slots[spoken.line.id] = max(slots.get(spoken.line.id, 0), len(spoken.samples))
        return {line_id: samples / SAMPLE_RATE for line_id, samples in slots.items()}

    def voices(
        self, story: Story, scene: Scene, locale: str, line_seconds: dict[str, float] | None = None
    ) -> Soundtrack:
        bible = bible_for(story.bible, locale, story.language)
        try:
            return soundtrack(scene, bible, locale, self.parts.synthesizer, line_seconds=line_seconds)
        except UnknownVoiceError as error:
            raise ProductionError(f"locale {locale!r}: {error}") from None

    # -- 3. render the shared picture -----------------------------------------------------------

    def render(self, series: Series, plans: dict[str, Plan]) -> dict[str, Path]:
        story = series.story
        self.progress.stage("render", len(series.scenes))
        clips: dict[str, Path] = {}
        previous_key = ""
        previous_frame: Path | None = None
        for episode in series.episodes:
            previous_key, previous_frame = "", None  # an episode opens on its own picture
            for authored in episode.scenes:
                plan = plans[authored.id]
                scene = plan.scene
                key = digest(
                    scene.model_dump(mode="json"),
                    story.bible.model_dump(mode="json"),
                    self.profile.model_dump(mode="json"),
                    self.parts.renderer_name,
                    plan.line_seconds,
                    previous_key,
                )
                clip = self.cache / "pictures" / f"{key}.mp4"
                if clip.exists() and clip.with_suffix(".last.png").exists():
                    self.counters.renders_reused += 1
                else:
                    request = RenderRequest(
                        scene=scene,
                        bible=story.bible,
                        language=story.language,
                        profile=self.profile,
                        output=clip,
                        previous_frame=previous_frame,
                        line_seconds=plan.line_seconds,
                        captions=False,
                    )
                    with disk_errors(f"rendering scene {scene.id!r}"):
                        try:
                            self.parts.renderer.render(request)
                        except RenderError as error:
                            raise ProductionError(f"scene {scene.id!r} cannot be rendered: {error}") from None
                    self.counters.rendered += 1
                    self.save_counters()
                clips[scene.id] = clip
                previous_key, previous_frame = key, clip.with_suffix(".last.png")
                self.progress.advance("render", note=scene.id)
        return clips

    # -- 4. assemble episodes per locale ----------------------------------------------------------

    def assemble(self, series: Series, number: int, plans: dict[str, Plan], clips: dict[str, Path]) -> dict[str, Any]:
        if number == 1:
            self.progress.stage("assemble", len(series.episodes) * len(self.locales))
        episode = series.episodes[number - 1]
        story = series.story
        folder = self.folder / f"episode-{number:02d}"
        scene_clips = [clips[scene.id] for scene in episode.scenes]
        title = f"{story.title}, episode {number}"
        speakers = {line.speaker for scene in episode.scenes for line in scene.lines}
        likenesses = likeness_releases(c for c in story.bible.characters if c.id in speakers)
        # Pictures are named by their content, so names, texts and the plan identify the episode's outputs.
        key = digest(
            [clip.name for clip in scene_clips],
            {
                locale: [plans[s.id].localized[locale].model_dump(mode="json") for s in episode.scenes]
                for locale in self.locales
            },
            [plans[s.id].line_seconds for s in episode.scenes],
            title,
            self.parts.producer,
            self.parts.signer is not None,
        )
        record = folder / ".assembled.json"
        kept = read_json(record)
        if (
            isinstance(kept, dict)
            and kept.get("key") == key
            and all((self.folder / files["mp4"]).exists() for files in kept["episode"]["files"].values())
        ):
            self.counters.assembled_reused += len(self.locales)
            self.progress.advance("assemble", len(self.locales), note=f"episode {number} (reused)")
            episode_entry: dict[str, Any] = kept["episode"]
            return episode_entry
        offsets, duration = clip_offsets(scene_clips)
        cues: dict[str, str] = {}
        tracks: dict[str, NDArray[np.float32]] = {}
        for locale in self.locales:
            track = np.zeros(round(duration * SAMPLE_RATE), dtype=np.float32)
            entries: list[Cue] = []
            bible = bible_for(story.bible, locale, story.language)
            for scene, offset in zip(episode.scenes, offsets, strict=True):
                plan = plans[scene.id]
                spoken = self.voices(story, plan.localized[locale], locale, plan.line_seconds)
                start = round(offset * SAMPLE_RATE)
                samples = spoken.samples()[: len(track) - start]
                track[start : start + len(samples)] += samples
                for timing, line in zip(spoken.timings(), spoken.lines, strict=True):
                    entries.append(
                        (
                            f"{scene.id}/{line.line.id}",
                            offset + timing.start,
                            offset + timing.end,
                            speaker_name(line.line.speaker, bible),
                            line.line.text,
                        )
                    )
            tracks[locale] = track
            cues[locale] = webvtt_text(entries)
        files: dict[str, Any] = {}
        for locale in self.locales:
            files[locale] = self.assemble_locale(
                folder, number, locale, scene_clips, tracks[locale], cues, title, likenesses
            )
            self.counters.assembled += 1
            self.progress.advance("assemble", note=f"episode {number} {locale}")
        entry = {
            "number": number,
            "title": {locale: plans[episode.scenes[0].id].localized[locale].title for locale in self.locales},
            "scenes": [scene.id for scene in episode.scenes],
            "duration_s": round(duration, 3),
            "files": files,
        }
        with disk_errors(f"recording episode {number}"):
            write_json(record, {"key": key, "episode": entry})
        return entry

    def assemble_locale(
        self,
        folder: Path,
        number: int,
        locale: str,
        clips: list[Path],
        track: NDArray[np.float32],
        cues: dict[str, str],
        title: str,
        likenesses: list[LikenessRelease],
    ) -> dict[str, Any]:
        stem = f"episode-{number:02d}.{locale}"
        mp4 = folder / f"{stem}.mp4"
        with disk_errors(f"assembling episode {number} in {locale}"):
            folder.mkdir(parents=True, exist_ok=True)
            for subtitle_locale, text in cues.items():
                replace_text(folder / f"episode-{number:02d}.{subtitle_locale}.vtt", text)
            label = aigc_label(digest([sha256_of(clip) for clip in clips], locale, cues[locale]), self.parts.producer)
            with tempfile.TemporaryDirectory(dir=folder, prefix=".assemble-") as scratch:
                work = Path(scratch)
                picture = work / "picture.mp4"
                concatenate_video(clips, picture)
                voice = work / "voice.wav"
                write_wav(voice, track, SAMPLE_RATE)
                muxed = work / "muxed.mp4"
                subtitles = {loc: folder / f"episode-{number:02d}.{loc}.vtt" for loc in cues}
                try:
                    mux_episode(picture, voice, locale, subtitles, {AIGC_KEY: label.to_json(), "title": title}, muxed)
                except RenderError as error:
                    raise ProductionError(str(error)) from None
                if self.parts.signer is not None:
                    signed = work / "signed.mp4"
                    self.parts.signer.sign(muxed, signed, title, likenesses=likenesses)
                    muxed = signed
                os.replace(muxed, mp4)
            hls = package_hls([mp4], folder / f"hls-{locale}")
        return {
            "mp4": str(mp4.relative_to(self.folder)),
            "sha256": sha256_of(mp4),
            "bytes": mp4.stat().st_size,
            "hls": str(hls.relative_to(self.folder)),
            "subtitles": {loc: f"episode-{number:02d}/episode-{number:02d}.{loc}.vtt" for loc in cues},
            "labels": {"aigc": read_aigc(mp4) is not None, "c2pa": self.parts.signer is not None},
        }

    # -- 5. manifest -------------------------------------------------------------------------------

    def manifest(self, series: Series, plans: dict[str, Plan], episodes: list[dict[str, Any]]) -> dict[str, Any]:
        story = series.story
        untranslated: dict[str, list[str]] = {}
        machine: dict[str, list[str]] = {}
        for plan in plans.values():
            for locale, keys in plan.untranslated.items():
                untranslated.setdefault(locale, []).extend(f"{plan.scene.id}/{key}" for key in keys)
            for locale, keys in plan.machine_translated.items():
                machine.setdefault(locale, []).extend(f"{plan.scene.id}/{key}" for key in keys)
        return {
            "title": story.title,
            "story": story.id,
            "story_digest": story.digest(),
            "source_language": story.language,
            "locales": self.locales,
            "profile": self.profile.name,
            "renderer": self.parts.renderer_name,
            "writer_model": self.parts.writer_model,
            "producer": self.parts.producer,
            "episodes": episodes,
            "duration_s": round(sum(episode["duration_s"] for episode in episodes), 3),
            "untranslated": {locale: {"count": len(keys), "texts": keys} for locale, keys in untranslated.items()},
            "machine_translated": {locale: {"count": len(keys), "texts": keys} for locale, keys in machine.items()},
            "counters": self.counters.__dict__,
        }
