"""What a job asks a worker to do: one pydantic model per kind, stored as the job's ``payload`` JSON.

Each is built in one place (the constructor functions below, or the model itself for a production),
and a worker gets it back parsed: :attr:`reelfork.server.queue.jobs.ClaimedJob.payload`.
"""

from __future__ import annotations

from typing import TypeAlias

from pydantic import BaseModel, ConfigDict
from reelfork.narrative.state import ViewerState
from reelfork.server.store import StoryVersion


class WriteJob(BaseModel):
    """Write the scene an open choice leads to (``write`` queue)."""

    model_config = ConfigDict(frozen=True)

    story: str
    version: int
    path: list[str]
    """The scenes the viewer went through, the one with the choice last."""
    choice: str
    scene: str
    """The content address of the scene to write."""
    must_end: bool
    """The story's open depth is reached: the written scene must be an ending."""


class RenderJob(BaseModel):
    """Render a scene's clip in a profile (``render`` or ``diffuse`` queue, by the profile's tier)."""

    model_config = ConfigDict(frozen=True)

    story: str
    version: int
    scene: str
    clip: str
    """The clip's content key."""
    profile: str
    look: str | None = None
    """The persona's look the picture draws; None: the default (or a story without looks)."""
    locale: str | None = None
    """The locale the picture's lips move to; None: the story's language."""
    through: int | None = None
    """The last segment of the clip's stream to render (the lookahead speculating on a choice not made yet):
    the job stores the segments up to it and stops, without finishing the clip; None: the whole clip. A later
    wish for more raises it (:meth:`reelfork.server.queue.jobs.JobQueue.want`)."""


class ProduceJob(BaseModel):
    """Run a linear production to the end (``produce`` queue)."""

    model_config = ConfigDict(frozen=True)

    production: str


JobPayload: TypeAlias = WriteJob | RenderJob | ProduceJob


def write_job(story: StoryVersion, state: ViewerState, choice: str, scene: str) -> WriteJob:
    """The job writing ``scene``, where ``choice`` leads from the viewer's current scene in ``state``."""
    return WriteJob(
        story=story.story.id,
        version=story.version,
        path=state.path,
        choice=choice,
        scene=scene,
        must_end=state.generated_depth + 1 >= story.story.open_depth,
    )


def render_job(
    story: StoryVersion,
    scene: str,
    clip: str,
    profile: str,
    look: str | None = None,
    locale: str | None = None,
    through: int | None = None,
) -> RenderJob:
    """The job rendering ``scene``'s shared picture (content key ``clip``) in ``profile``, ``look`` and ``locale``,
    up to segment ``through`` (None: all of it)."""
    return RenderJob(
        story=story.story.id,
        version=story.version,
        scene=scene,
        clip=clip,
        profile=profile,
        look=look,
        locale=locale,
        through=through,
    )
