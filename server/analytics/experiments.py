"""Plot experiments: variants of one scene, each its own immutable story version, shown to new viewers split
stably by a hash of their viewer id; results per variant from that version's counters.

Every arm (the authored scene too) is published as a fresh version, so an arm's counters hold only its own
viewers; the control is published last and stays the latest. Clips are content-addressed, so a variant's
scene renders once, whoever watches it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Literal, Self

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, model_validator
from reelfork.narrative.ids import Identifier
from reelfork.narrative.story import Scene, Story, episode_of
from reelfork.server.analytics.report import counters
from reelfork.server.analytics.stats import ALPHA, Difference, Rate, difference, rate, winner
from reelfork.server.analytics.variants import WriteVariants, without_stale_translations
from reelfork.server.queue import keys
from reelfork.server.store import Store, StoryVersion

CACHE_S = 2.0
TEST = (
    "Pooled two-proportion z-test, two-sided, on the continue-to-next-episode rate; a winner only when the best "
    f"variant beats every other at p < {ALPHA} / (variants - 1) (Bonferroni). Intervals: Wilson score, 95%; "
    "the difference's: Newcombe's hybrid score interval."
)


class VariantSpec(BaseModel):
    id: Identifier
    scene: Scene | None = None
    """The variant's scene (its id is the experiment's scene); absent: the authored scene, the control."""


MIN_ARMS, MAX_ARMS = 2, 4


class ExperimentRequest(BaseModel):
    id: Identifier | None = None
    """Default: a new id."""
    scene: Identifier
    variants: list[VariantSpec] = Field(min_length=1, max_length=MAX_ARMS)
    write: WriteVariants | None = None
    """Also have the writer write variants; the experiment then starts once they are written (``202``)."""
    version: int | None = None
    """The story version the variants change; default: the latest."""

    @model_validator(mode="after")
    def _arms(self) -> Self:
        arms = len(self.variants) + (self.write.count if self.write is not None else 0)
        if not MIN_ARMS <= arms <= MAX_ARMS:
            raise ValueError(f"an experiment has {MIN_ARMS} to {MAX_ARMS} variants, written ones included; got {arms}")
        return self


class Variant(BaseModel):
    id: str
    version: int | None
    """The story version that plays this variant; null while the experiment is being written."""
    written: bool = False
    """Written by the writer (its provenance is the story version's)."""
    untranslated: list[str] = []
    """Text keys whose translations this variant's version drops: the variant changed the text they translated."""


class Experiment(BaseModel):
    id: str
    story: str
    scene: str
    base_version: int
    created: float
    variants: list[Variant]
    status: Literal["writing", "running", "failed"] = "running"
    """``writing``: the writer is writing variants, nobody is split yet; ``failed``: it could not (see ``failure``)."""
    failure: str | None = None
    promoted: int | None = None
    """The story version published with the winner; the experiment is over once set."""


class VariantResult(BaseModel):
    id: str
    version: int
    sessions: int
    continue_rate: Rate
    """Sessions that finished the scene's episode and went on to play the next."""
    unlock_rate: Rate
    """Sessions that met the next episode's paywall and unlocked it."""
    completion_rate: Rate
    """Sessions that reached an ending."""


class ExperimentResult(BaseModel):
    experiment: Experiment
    episode: int
    """The episode of the scene under test: its continue rate decides."""
    variants: list[VariantResult]
    winner: str | None
    """Named only when significant (see ``test``)."""
    lead: Difference | None
    """The winner's (else the best variant's) continue rate minus the runner-up's."""
    test: str = TEST


def arm(experiment: str, viewer: str, arms: int) -> int:
    """The viewer's arm: stable for the viewer, uniform over viewers."""
    digest = hashlib.sha256(f"{experiment}\x1f{viewer}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % arms


def variant_story(base: Story, scene_id: str, variant: Scene) -> tuple[Story, list[str]]:
    """``base`` with ``scene_id`` replaced by ``variant`` (checked like any published story by the caller), less
    the translations of the texts the variant changed, whose keys come second."""
    story, stale = without_stale_translations(base, scene_id, variant)
    scenes = [variant.model_copy(update={"id": scene_id}) if s.id == scene_id else s for s in story.scenes]
    return Story.model_validate(story.model_copy(update={"scenes": scenes}).model_dump()), stale


class Experiments:
    def __init__(self, redis: aioredis.Redis, store: Store) -> None:
        self.redis = redis
        self.store = store
        self._active: dict[str, tuple[float, Experiment | None]] = {}

    async def save(self, experiment: Experiment) -> None:
        await self.redis.hset(keys.experiments(experiment.story), experiment.id, experiment.model_dump_json())
        self._active.pop(experiment.story, None)

    async def get(self, story_id: str, experiment_id: str) -> Experiment | None:
        raw = await self.redis.hget(keys.experiments(story_id), experiment_id)
        return Experiment.model_validate_json(raw) if raw is not None else None

    async def active(self, story_id: str) -> Experiment | None:
        """The newest experiment not yet promoted (cached for :data:`CACHE_S`)."""
        cached = self._active.get(story_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        raws = await self.redis.hvals(keys.experiments(story_id))
        running = [
            e for e in (Experiment.model_validate_json(raw) for raw in raws)
            if e.promoted is None and e.status == "running"
        ]
        found = max(running, key=lambda e: e.created, default=None)
        self._active[story_id] = (time.monotonic(), found)
        return found

    async def story_for(self, story_id: str, viewer: str) -> StoryVersion | None:
        """The version a new session of ``viewer`` plays: their arm of a running experiment, else the latest."""
        experiment = await self.active(story_id)
        if experiment is None:
            return await self.store.story(story_id)
        chosen = experiment.variants[arm(experiment.id, viewer, len(experiment.variants))]
        if chosen.version is None:
            return await self.store.story(story_id)
        return await self.store.story(story_id, chosen.version)

    async def result(self, experiment: Experiment) -> ExperimentResult:
        base = await self.store.story(experiment.story, experiment.base_version)
        if base is None:
            raise LookupError(f"story {experiment.story!r} version {experiment.base_version} is gone")
        episode = episode_of(base.story, experiment.scene).number
        results: list[VariantResult] = []
        for variant in experiment.variants:
            if variant.version is None:
                continue
            story = await self.store.story(experiment.story, variant.version)
            if story is None:
                continue
            counts = await counters(self.redis, story, None, None, None, None)
            endings = sum(value for field, value in counts.items() if field.startswith("ending:"))
            results.append(VariantResult(
                id=variant.id, version=variant.version, sessions=counts["sessions"],
                continue_rate=rate(counts[f"ep:{episode}:continued"], counts[f"ep:{episode}:finished"]),
                unlock_rate=rate(counts[f"unlocked:{episode + 1}"], counts[f"paywall:{episode + 1}"]),
                completion_rate=rate(endings, counts["sessions"]),
            ))
        rates = {r.id: r.continue_rate for r in results}
        ranked = sorted(results, key=lambda r: r.continue_rate.rate or 0.0, reverse=True)
        lead = difference(ranked[0].continue_rate, ranked[1].continue_rate) if len(ranked) > 1 else None
        best = winner(rates) if experiment.status == "running" else None
        return ExperimentResult(experiment=experiment, episode=episode, variants=results, winner=best, lead=lead)
