"""Creators' plot experiments: variants of a scene split among new viewers, their results, promoting the winner."""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel
from reelfork.narrative.formats import StoryError, load_story
from reelfork.narrative.story import Story
from reelfork.server.analytics.experiments import (
    Experiment,
    ExperimentRequest,
    ExperimentResult,
    Variant,
    variant_story,
)
from reelfork.server.runtime import Runtime
from reelfork.server.web.dependencies import RuntimeDep, creator
from reelfork.server.web.problems import CREATOR_ERRORS, ERRORS, NOT_FOUND, Located, Message, Refused

router = APIRouter(prefix="/v1", tags=["experiments"], dependencies=[Depends(creator)],
                   responses={**ERRORS, **CREATOR_ERRORS})
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Message, "description": "No significant winner yet, or the experiment is over."}
}


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


@router.post("/stories/{story_id}/experiments", status_code=201, responses=NOT_FOUND)
async def create_experiment(runtime: RuntimeDep, story_id: str, request: ExperimentRequest) -> Experiment:
    """Start an experiment: each variant becomes a story version, and new viewers are split among them."""
    base = await runtime.store.story(story_id, request.version)
    if base is None:
        raise HTTPException(404, f"no story {story_id!r}")
    if request.scene not in base.story.scene_index():
        raise Refused([Located(severity="error", where="body.scene", message=f"no scene {request.scene!r}")])
    if len({v.id for v in request.variants}) != len(request.variants):
        raise Refused([Located(severity="error", where="body.variants", message="variant ids must differ")])
    stories: dict[str, Story] = {}
    for index, spec in enumerate(request.variants):
        if spec.scene is None:
            stories[spec.id] = base.story
            continue
        try:
            candidate = variant_story(base.story, request.scene, spec.scene)
            stories[spec.id], _ = load_story(candidate.model_dump_json().encode(), source="variant", kind="story")
        except StoryError as exc:
            where = f"body.variants[{index}].scene"
            found = [Located(severity=p.severity, where=where, message=p.message) for p in exc.problems]
            raise Refused(found) from None
    versions: dict[str, int] = {}
    controls = [s.id for s in request.variants if s.scene is None]
    for spec_id in [s.id for s in request.variants if s.scene is not None] + controls:  # a control stays latest
        versions[spec_id] = await _publish_arm(runtime, stories[spec_id])
        loaded = await runtime.store.story(story_id, versions[spec_id])
        if loaded is not None:
            await runtime.director.ensure_clip(loaded, loaded.story.scene(request.scene), time.time())
    experiment = Experiment(
        id=request.id or "x-" + secrets.token_hex(4), story=story_id, scene=request.scene,
        base_version=base.version, created=time.time(),
        variants=[Variant(id=s.id, version=versions[s.id]) for s in request.variants],
    )
    if await runtime.experiments.get(story_id, experiment.id) is not None:
        raise HTTPException(409, f"experiment {experiment.id!r} exists already")
    await runtime.experiments.save(experiment)
    return experiment


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
    result = await runtime.experiments.result(experiment)
    if result.winner is None:
        raise HTTPException(409, "no variant wins significantly yet; nothing was published")
    winning = next(v for v in experiment.variants if v.id == result.winner)
    version = await runtime.store.republish(story_id, winning.version)
    if version is None:
        raise HTTPException(409, f"the winner's story version {winning.version} is gone")
    await runtime.experiments.save(experiment.model_copy(update={"promoted": version}))
    return Promoted(experiment=experiment.id, winner=result.winner, version=version)
