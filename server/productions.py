"""Linear productions wired to settings: parse the input, build the components, run, report progress.

Used by ``reelfork produce`` (in the terminal, with rich progress bars) and by the ``produce`` job of
the workers (``POST /v1/productions``), which runs :func:`produce` in a worker's process pool and
leaves progress in ``progress.json`` beside the outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from reelfork.generation.production.drafting import Premise
from reelfork.generation.production.pipeline import (
    Components,
    Production,
    ProductionError,
    check_locales,
    digest,
    write_json,
)
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.voice import EspeakSynthesizer
from reelfork.narrative.formats import StoryError, load_story
from reelfork.narrative.ids import Identifier
from reelfork.narrative.series import SeriesError, series_of
from reelfork.narrative.story import Story
from reelfork.server.components import (
    RendererOptions,
    WriterOptions,
    make_renderer,
    make_signer,
    make_writer,
    renderer_name,
    renderer_options,
    writer_model_name,
    writer_options,
)
from reelfork.server.queue import keys
from reelfork.server.settings import Settings

PRODUCTIONS = "productions"


class ProductionSpec(BaseModel):
    """What ``POST /v1/productions`` takes (and what the ``produce`` job carries)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    premise: Premise | None = None
    story: dict[str, Any] | None = None
    """A linear story in the project's format (JSON)."""
    locales: list[str] = Field(default_factory=lambda: ["en"], min_length=1, max_length=16)
    profile: str = "animatic"


class ProductionRequest(BaseModel):
    """The body of ``POST /v1/productions``: one source (a premise, an inline story, or a published story)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    premise: Premise | None = None
    story: dict[str, Any] | None = None
    story_id: Identifier | None = None
    version: int | None = Field(default=None, ge=1)
    locales: list[str] = Field(default_factory=lambda: ["en"], min_length=1, max_length=16)
    profile: str = "animatic"

    @model_validator(mode="after")
    def _one_source(self) -> ProductionRequest:
        given = [name for name in ("premise", "story", "story_id") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of premise, story or story_id (got {', '.join(given) or 'none'})")
        return self


def checked_spec(request: ProductionRequest, story: Story | None) -> ProductionSpec:
    """The spec a production job runs, after every check that can fail before any work starts."""
    locales = check_locales(request.locales)
    if request.profile not in PROFILES:
        raise ProductionError(f"unknown render profile {request.profile!r}; use one of {', '.join(PROFILES)}")
    if story is not None:
        try:
            series_of(story)
        except SeriesError as error:
            raise ProductionError(str(error)) from None
    return ProductionSpec(
        premise=request.premise,
        story=story.model_dump(mode="json") if story is not None else None,
        locales=locales,
        profile=request.profile,
    )


def production_id(spec: ProductionSpec) -> str:
    """Content-addressed: the same request is the same production, so posting it again resumes or returns it."""
    return digest(spec.model_dump(mode="json"))[:20]


class ProductionRecords:
    """Status of productions in Redis (:func:`keys.production`); the outputs live in the data folder."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(self, production: str, spec: ProductionSpec) -> bool:
        """Record a new production as queued; False if it already exists."""
        key = keys.production(production)
        created = await self.redis.hsetnx(key, "spec", spec.model_dump_json())
        if created:
            await self.redis.hset(key, mapping={"status": "queued", "created": time.time(), "error": ""})
        return bool(created)

    async def get(self, production: str) -> dict[str, Any] | None:
        data = cast(dict[str, Any], await self.redis.hgetall(keys.production(production)))  # decode_responses: text
        return data or None

    async def update(self, production: str, **fields: Any) -> None:
        await self.redis.hset(keys.production(production), mapping={k: str(v) for k, v in fields.items()})


def parse_source(text: str, source: str) -> Story | Premise:
    """A premise or a linear story from YAML/JSON text (or Twee/Yarn by file name); a precise error otherwise."""
    stripped = text.strip()
    if not stripped:
        raise ProductionError(
            f"{source}: the premise is empty; give a title, a bible (logline, setting, tone, characters) and places"
        )
    lower = source.lower()
    if lower.endswith((".twee", ".tw", ".yarn")):
        return story_from(text.encode(), source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ProductionError(f"{source}: not valid YAML or JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProductionError(f"{source}: expected a mapping (a premise or a story), got {type(data).__name__}")
    if "scenes" in data:
        return story_from(text.encode(), source)
    return premise_from(data, source)


def story_from(data: bytes, source: str) -> Story:
    try:
        story, _ = load_story(data, source=source)
    except StoryError as error:
        raise ProductionError("\n".join(str(problem) for problem in error.problems)) from None
    return story


def premise_from(data: Any, source: str) -> Premise:
    try:
        return Premise.model_validate(data)
    except ValidationError as error:
        problems = [f"{source}: {'.'.join(str(p) for p in e['loc']) or 'premise'}: {e['msg']}" for e in error.errors()]
        raise ProductionError("\n".join(problems)) from None


class ProductionOptions(BaseModel):
    """Everything a pool process needs to build a production's components: it pickles (secrets too)."""

    model_config = ConfigDict(frozen=True)

    writer: WriterOptions
    renderer: RendererOptions
    renderer_name: str
    cache: Path


def options(settings: Settings, profile: str) -> ProductionOptions:
    if profile not in PROFILES:
        raise ProductionError(f"unknown render profile {profile!r}; use one of {', '.join(PROFILES)}")
    return ProductionOptions(
        writer=writer_options(settings),
        renderer=renderer_options(settings),
        renderer_name=renderer_name(settings, PROFILES[profile]),
        cache=settings.data_dir / "cache" / PRODUCTIONS,
    )


def components(chosen: ProductionOptions, profile: str) -> Components:
    """The renderer, voices, writer and signer the interactive mode uses, built from the same settings."""
    signer = make_signer(chosen.renderer)
    writer = make_writer(chosen.writer)
    return Components(
        renderer=make_renderer(profile, chosen.renderer, signer),
        renderer_name=chosen.renderer_name,
        synthesizer=EspeakSynthesizer(),
        writer=writer,
        completer=writer,
        writer_model=writer_model_name(chosen.writer, writer),
        signer=signer,
    )


class FileProgress:
    """Progress as ``progress.json`` in the production folder, rewritten at most twice a second."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "progress.json"
        self.stages: dict[str, dict[str, Any]] = {}
        self.written = 0.0
        self.lock = threading.Lock()

    def stage(self, name: str, total: int) -> None:
        with self.lock:
            self.stages[name] = {"done": 0, "total": total, "note": ""}
        self.flush(force=True)

    def advance(self, name: str, done: int = 1, note: str = "") -> None:
        with self.lock:
            entry = self.stages.setdefault(name, {"done": 0, "total": 0, "note": ""})
            entry["done"] += done
            entry["note"] = note
        self.flush()

    def flush(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.written < 0.5:
            return
        self.written = time.monotonic()
        with self.lock:
            snapshot = json.loads(json.dumps(self.stages))
        # Progress is advisory; a full disk is reported by the stage that writes real output.
        with contextlib.suppress(OSError):
            write_json(self.path, {"stages": snapshot, "updated": time.time()})


def production_folder(settings: Settings, production_id: str) -> Path:
    return settings.data_dir / PRODUCTIONS / production_id


def produce(spec_json: str, folder: str, chosen: ProductionOptions) -> dict[str, Any]:
    """Run one production to the end (in a worker's pool process); returns the manifest."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    spec = ProductionSpec.model_validate_json(spec_json)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    production = Production(
        target,
        chosen.cache,
        components(chosen, spec.profile),
        PROFILES[spec.profile],
        check_locales(spec.locales),
        FileProgress(target),
    )
    story = story_from(json.dumps(spec.story).encode(), "story.json") if spec.story is not None else None
    return production.run(story=story, premise=spec.premise)
