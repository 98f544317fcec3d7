"""Creators' plot experiments: variants of a scene split among new viewers, their results, promoting the winner."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel
from reelfork.narrative.formats import StoryError, load_story
from reelfork.narrative.story import Scene, Story
from reelfork.server.analytics.experiments import (
    Experiment,
    ExperimentRequest,
    ExperimentResult,
    Variant,
    variant_story,
)
from reelfork.server.analytics.variants import (
    ATTEMPTS,
    WriteVariants,
    as_variant,
    lead_in,
    translation_problems,
    variant_request,
)
from reelfork.server.components import writer_options
from reelfork.server.runtime import Runtime
from reelfork.server.store import StoryVersion
from reelfork.server.web.bodies import json_body, read_body
from reelfork.server.web.dependencies import RuntimeDep, creator
from reelfork.server.web.problems import CREATOR_ERRORS, ERRORS, NOT_FOUND, TOO_LARGE, Located, Message, Refused
from reelfork.server.worker import write_scene

router = APIRouter(prefix="/v1", tags=["experiments"], dependencies=[Depends(creator)],
                   responses={**ERRORS, **CREATOR_ERRORS})
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Message, "description": "No significant winner yet, or the experiment is over."}
}


log = logging.getLogger(__name__)


class Promoted(BaseModel):
    experiment: str
    winner: str
    version: int
    """The new latest story version: the winner's."""


async def _publish_arm(runtime: Runtime, story: Story) -> int:
    """A fresh version of ``story`` (its own counters), with the scene's clip queued to render now."""
    version, _ = await runtime.store.publish(story)
    fresh = await runtime.store.republish(story.id, version)
    loaded = await runtime.store.story(story.id, fresh) if fresh is not None else None
    if loaded is None:
        raise HTTPException(503, "the story version just published is not readable; try again")
    return loaded.version


def _checked(
    base: Story, scene_id: str, variant: Scene, where: str, *, written: bool = False
) -> tuple[Story, list[str]]:
    """The variant's story, checked like any published story, and the translation keys it drops (stale).

    An authored variant must keep the line and choice ids the translations name; a written one has new text in
    every line anyway (and the authored choices), so translations of lines it does not have are dropped too."""
    dropped = [] if written else translation_problems(base, scene_id, variant)
    if dropped:
        raise Refused([Located(severity="error", where=f"{where}.{p.field}", message=p.message) for p in dropped])
    candidate, stale = variant_story(base, scene_id, variant)
    try:
        story, _ = load_story(candidate.model_dump_json().encode(), source="variant", kind="story")
    except StoryError as exc:
        raise Refused([Located(severity=p.severity, where=where, message=p.message) for p in exc.problems]) from None
    return story, stale


async def _start(runtime: Runtime, experiment: Experiment, arms: dict[str, Story | None], base: StoryVersion) -> None:
    """Publish every arm (``None``: the authored scene, the control) and let the split begin."""
    versions: dict[str, int] = {}
    order = [v for v, story in arms.items() if story is not None] + [v for v, story in arms.items() if story is None]
    for variant_id in order:  # a control is published last: it stays the latest version
        versions[variant_id] = await _publish_arm(runtime, arms[variant_id] or base.story)
        loaded = await runtime.store.story(experiment.story, versions[variant_id])
        if loaded is not None:
            await runtime.director.ensure_clip(loaded, loaded.story.scene(experiment.scene), time.time())
    variants = [v.model_copy(update={"version": versions[v.id]}) for v in experiment.variants]
    await runtime.experiments.save(experiment.model_copy(update={"variants": variants, "status": "running"}))


@router.post(
    "/stories/{story_id}/experiments",
    status_code=201,
    responses={
        **NOT_FOUND,
        **TOO_LARGE,
        202: {
            "model": Experiment,
            "description": "Accepted: the writer writes the variants asked for (status ``writing``); poll the "
            "experiment until ``running``.",
        },
    },
    openapi_extra=json_body(ExperimentRequest),
)
async def create_experiment(runtime: RuntimeDep, story_id: str, body: Request, response: Response) -> Experiment:
    """Start an experiment: each variant becomes a story version, and new viewers are split among them.

    With ``write``, the writer writes that many more variants first (``202``, status ``writing``), each checked
    like any scene it writes and keeping the scene's line ids and choices; the split starts once all are written.
    """
    request = await read_body(body, ExperimentRequest)  # here, after the router's creator check, not before it
    base = await runtime.store.story(story_id, request.version)
    if base is None:
        raise HTTPException(404, f"no story {story_id!r}")
    if request.scene not in base.story.scene_index():
        raise Refused([Located(severity="error", where="body.scene", message=f"no scene {request.scene!r}")])
    written_ids = [f"{request.write.prefix}-{n}" for n in range(1, request.write.count + 1)] if request.write else []
    ids = [v.id for v in request.variants] + written_ids
    if len(set(ids)) != len(ids):
        raise Refused([Located(severity="error", where="body.variants", message="variant ids must differ")])
    if request.write is not None and lead_in(base.story, request.scene) is None:
        raise Refused([Located(severity="error", where="body.write", message=(
            f"no scene leads to {request.scene!r}: the writer writes a variant from the scene before it"))])
    arms: dict[str, Story | None] = {}
    stale: dict[str, list[str]] = {}
    for index, spec in enumerate(request.variants):
        if spec.scene is None:
            arms[spec.id] = None
            continue
        arms[spec.id], stale[spec.id] = _checked(base.story, request.scene, spec.scene, f"body.variants[{index}].scene")
    experiment_id = request.id or "x-" + secrets.token_hex(4)
    if await runtime.experiments.get(story_id, experiment_id) is not None:
        raise HTTPException(409, f"experiment {experiment_id!r} exists already")
    experiment = Experiment(
        id=experiment_id, story=story_id, scene=request.scene, base_version=base.version, created=time.time(),
        variants=[Variant(id=v.id, version=None, untranslated=stale.get(v.id, [])) for v in request.variants]
        + [Variant(id=v, version=None, written=True) for v in written_ids],
        status="writing" if request.write else "running",
    )
    if request.write is None:
        await _start(runtime, experiment, arms, base)
        found = await runtime.experiments.get(story_id, experiment.id)
        return found or experiment
    await runtime.experiments.save(experiment)
    runtime.spawn(_write_variants(runtime, experiment, arms, base, request.write), name=f"write {experiment.id}")
    response.status_code = 202
    return experiment


async def _write_variants(
    runtime: Runtime, experiment: Experiment, arms: dict[str, Story | None], base: StoryVersion, ask: WriteVariants
) -> None:
    """Write the variants asked for, one after another in the writer's own process, then start the experiment;
    on failure the experiment is ``failed`` and nobody is split."""
    authored = base.story.scene(experiment.scene)
    variants = {v.id: v for v in experiment.variants}
    options = writer_options(runtime.settings)
    options = options.model_copy(update={"max_attempts": max(options.max_attempts, ATTEMPTS)})
    try:
        for index, variant in enumerate(v for v in experiment.variants if v.written):
            request = variant_request(base.story, experiment.scene, ask.brief, experiment.id, index)
            if request is None:
                raise LookupError(f"no scene leads to {experiment.scene!r}")
            scene_json, _ = await runtime.variant_writer.run(write_scene, request.model_dump_json(), options)
            scene = as_variant(Scene.model_validate(scene_json), authored)
            where = f"written variant {variant.id}"
            arms[variant.id], untranslated = _checked(base.story, experiment.scene, scene, where, written=True)
            variants[variant.id] = variant.model_copy(update={"untranslated": untranslated})
        ready = experiment.model_copy(update={"variants": [variants[v.id] for v in experiment.variants]})
        await _start(runtime, ready, arms, base)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the writer gave up (WriteError), a worker died, or a written scene did not check
        log.warning("experiment %s: writing variants failed: %s", experiment.id, exc)
        await runtime.experiments.save(experiment.model_copy(update={"status": "failed", "failure": str(exc)[:2000]}))


@router.get("/stories/{story_id}/experiments/{experiment_id}", responses=NOT_FOUND)
async def experiment_result(runtime: RuntimeDep, story_id: str, experiment_id: str) -> ExperimentResult:
    """Per variant: continue-to-next-episode, unlock and completion rates with 95% intervals, and a winner only
    when the difference is significant (the test is named in the answer)."""
    experiment = await runtime.experiments.get(story_id, experiment_id)
    if experiment is None:
        raise HTTPException(404, f"no experiment {experiment_id!r} of story {story_id!r}")
    return await runtime.experiments.result(experiment)


@router.post("/stories/{story_id}/experiments/{experiment_id}/promote", responses={**NOT_FOUND, **CONFLICT})
async def promote(runtime: RuntimeDep, story_id: str, experiment_id: str, response: Response) -> Promoted:
    """Publish the winner as the story's new latest version and end the experiment."""
    experiment = await runtime.experiments.get(story_id, experiment_id)
    if experiment is None:
        raise HTTPException(404, f"no experiment {experiment_id!r} of story {story_id!r}")
    if experiment.promoted is not None:
        raise HTTPException(409, f"experiment {experiment_id!r} is over: version {experiment.promoted} was promoted")
    if experiment.status != "running":
        raise HTTPException(409, f"experiment {experiment_id!r} is {experiment.status}: nothing to promote")
    result = await runtime.experiments.result(experiment)
    if result.winner is None:
        raise HTTPException(409, "no variant wins significantly yet; nothing was published")
    winning = next(v for v in experiment.variants if v.id == result.winner)
    version = await runtime.store.republish(story_id, winning.version) if winning.version is not None else None
    if version is None:
        raise HTTPException(409, f"the winner's story version {winning.version} is gone")
    await runtime.experiments.save(experiment.model_copy(update={"promoted": version}))
    return Promoted(experiment=experiment.id, winner=result.winner, version=version)
