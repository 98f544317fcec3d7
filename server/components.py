"""Building the writer, the renderers and the C2PA signer from settings: one place for the server, the
workers and linear production.

Settings are read once, in the parent process, into small typed option models (the blocked-word file
included); the options pickle, so a pool process builds its own components from them. Components
themselves are built inside the process that uses them: a c2pa signer holds a native handle that
cannot be pickled, and llama.cpp or torch should load once per process, not per job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict
from reelfork.generation.render.backends import renderer_for
from reelfork.generation.render.c2pa import ClipSigner
from reelfork.generation.render.profiles import PROFILES, RenderProfile
from reelfork.generation.render.request import Renderer
from reelfork.generation.render.stills import DiffusersPortraitist, ReferenceShelf, portraitist_name
from reelfork.generation.writer.checks import WordListPolicy, read_word_list
from reelfork.server.settings import Settings

if TYPE_CHECKING:
    from reelfork.generation.writer.llama import LlamaCppWriter
    from reelfork.generation.writer.openai import OpenAIWriter


class WriterOptions(BaseModel):
    """Which LLM writes, and how: everything a pool process needs to build the writer."""

    model_config = ConfigDict(frozen=True)

    writer: Literal["llama-cpp", "openai"]
    url: str | None
    model: str
    api_key: str | None
    dialect: Literal["vllm", "llama-cpp"]
    timeout_s: float
    model_path: Path | None
    n_threads: int
    max_attempts: int
    blocked_words: tuple[str, ...] | None
    """The content policy's words, read once from ``REELFORK_WRITER_BLOCKED_WORDS``; None: the built-in list."""


class RendererOptions(BaseModel):
    """What every renderer is built with: threads, the diffusion model folder, the C2PA credentials."""

    model_config = ConfigDict(frozen=True)

    threads: int
    model_dir: Path | None
    stills_dir: Path | None = None
    c2pa_dir: Path
    certificate: Path | None
    key: Path | None
    timestamp_url: str | None


def writer_options(settings: Settings) -> WriterOptions:
    words = settings.writer_blocked_words
    return WriterOptions(
        writer=settings.writer,
        url=settings.writer_url,
        model=settings.writer_model,
        api_key=settings.writer_api_key.get_secret_value() if settings.writer_api_key else None,
        dialect=settings.writer_dialect,
        timeout_s=settings.writer_timeout_s,
        model_path=settings.writer_model_path,
        n_threads=settings.writer_threads,
        max_attempts=settings.writer_attempts,
        blocked_words=tuple(read_word_list(words.read_text(encoding="utf-8"))) if words is not None else None,
    )


def renderer_options(settings: Settings) -> RendererOptions:
    return RendererOptions(
        threads=settings.render_threads,
        model_dir=settings.render_model_dir,
        stills_dir=settings.render_stills_dir,
        c2pa_dir=settings.c2pa_dir or settings.data_dir / "c2pa",
        certificate=settings.c2pa_certificate,
        key=settings.c2pa_key,
        timestamp_url=settings.c2pa_timestamp_url,
    )


def renderer_name(settings: Settings, profile: RenderProfile | None = None) -> str:
    """Which renderer and model draw ``profile`` (default: the settings' own), as named in clip keys:
    ``tier:model``, and ``+portraitist`` when clips are conditioned on cast references made by one."""
    profile = profile or settings.profile
    if profile.tier == "animatic" or settings.render_model_dir is None:
        return "animatic"
    name = f"{profile.tier}:{settings.render_model_dir.name}"
    if settings.render_stills_dir is not None:
        name += f"+{portraitist_name(settings.render_stills_dir)}"
    return name


def renderer_names(settings: Settings) -> dict[str, str]:
    """The render profiles a deployment shows, best first, each with its renderer's name."""
    return {profile.name: renderer_name(settings, profile) for profile in settings.ladder}


def make_writer(options: WriterOptions) -> LlamaCppWriter | OpenAIWriter:
    # Backends are imported here: llama.cpp loads a native library that a server or an HTTP-writer host never uses.
    from reelfork.generation.writer.llama import LlamaCppWriter
    from reelfork.generation.writer.openai import OpenAIWriter

    policy = WordListPolicy(options.blocked_words) if options.blocked_words is not None else WordListPolicy()
    if options.writer == "openai":
        if options.url is None:
            raise ValueError("the openai writer needs a URL (REELFORK_WRITER_URL)")
        return OpenAIWriter(
            options.url,
            options.model,
            api_key=options.api_key,
            dialect=options.dialect,
            timeout_s=options.timeout_s,
            max_attempts=options.max_attempts,
            policy=policy,
        )
    # llama.cpp's OpenMP threads spin while waiting; beside a busy renderer that wastes the core it needs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return LlamaCppWriter(
        model_path=options.model_path, n_threads=options.n_threads, max_attempts=options.max_attempts, policy=policy
    )


def writer_model_name(options: WriterOptions, writer: LlamaCppWriter | OpenAIWriter) -> str:
    """``backend:model``, as recorded in productions' manifests and content keys."""
    from reelfork.generation.writer.llama import LlamaCppWriter

    model = writer.model_path.name if isinstance(writer, LlamaCppWriter) else options.model
    return f"{options.writer}:{model}"


def make_signer(options: RendererOptions) -> ClipSigner:
    """The production C2PA chain if configured, else the development one made in ``c2pa_dir``."""
    if options.certificate is not None and options.key is not None:
        return ClipSigner.production(options.certificate, options.key, timestamp_url=options.timestamp_url)
    return ClipSigner.development(options.c2pa_dir)


def make_renderer(profile: RenderProfile | str, options: RendererOptions, signer: ClipSigner | None = None) -> Renderer:
    """A renderer for ``profile``'s tier, signing with ``signer`` (default: the one ``options`` describe)."""
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(options.threads))
    return renderer_for(
        chosen, model_dir=options.model_dir, signer=signer or make_signer(options), threads=options.threads
    )


def make_shelf(profile: RenderProfile, options: RendererOptions, folder: Path) -> ReferenceShelf | None:
    """Where a diffusion profile's cast references come from (made once into ``folder``, signed); None for the
    animatic, or when no text-to-image folder is configured (clips are then conditioned on text alone)."""
    if profile.tier == "animatic" or options.stills_dir is None:
        return None
    portraitist = DiffusersPortraitist(
        options.stills_dir, device=profile.device, dtype=profile.dtype, threads=options.threads
    )
    return ReferenceShelf(folder, portraitist, signer=make_signer(options))
