"""The notices published on :data:`reelfork.server.queue.keys.EVENTS`, one pydantic model per kind.

On the wire a notice is a JSON object with its ``topic`` (``<kind>:<key>``, say ``clip:<clip key>``)
and its data fields beside it; :meth:`Notice.wire` and :func:`parse_notice` translate.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Notice(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    key: str = ""
    """What the notice is about: a scene id, a clip key, a worker's name, a scheduler node."""

    @property
    def topic(self) -> str:
        """What waiters subscribe to (:func:`topic`)."""
        return topic(self.kind, self.key)

    def wire(self) -> str:
        return json.dumps({"topic": self.topic, **self.model_dump(mode="json", exclude={"key", "kind"})})


class Written(Notice):
    """A scene is written (or its fallback stored); ``key`` is the scene id."""

    kind: Literal["written"] = "written"
    seconds: float
    """How long the writing took."""


class Started(Notice):
    """A worker started rendering a clip; ``key`` is the clip key."""

    kind: Literal["started"] = "started"
    profile: str
    worker: str
    segment: int = 0
    """The first segment it renders: past those a render killed mid-stream stored (they are kept)."""


class ClipReady(Notice):
    """A clip is rendered and stored; ``key`` is the clip key."""

    kind: Literal["clip"] = "clip"
    file: str
    duration: float
    seconds: float
    """How long the render took."""
    profile: str


class SegmentReady(Notice):
    """A segment of a clip's stream is stored; ``key`` is the clip key."""

    kind: Literal["segment"] = "segment"
    index: int
    frames: int
    worker: str


class Failed(Notice):
    """A job was given up on; ``key`` is the job key."""

    kind: Literal["failed"] = "failed"


class WorkerAlive(Notice):
    """A worker is alive and serves these queues; ``key`` is its name."""

    kind: Literal["worker"] = "worker"
    kinds: list[str]


class Chose(Notice):
    """A viewer on ``replica`` made ``choice``; ``key`` is the scheduler node of the scene."""

    kind: Literal["chose"] = "chose"
    choice: str
    replica: str


class Resumed(Notice):
    """Dispatched in this process (never published) when the subscription is back after it was lost:
    whatever was announced meanwhile is in the store, not in the notices."""

    kind: Literal["resumed"] = "resumed"


AnyNotice: TypeAlias = Annotated[
    Written | Started | ClipReady | SegmentReady | Failed | WorkerAlive | Chose | Resumed, Field(discriminator="kind")
]
RESUMED = "resumed"
"""The topic of :class:`Resumed`."""

_notices: TypeAdapter[AnyNotice] = TypeAdapter(AnyNotice)


def topic(kind: str, key: str = "") -> str:
    """The topic of the notices of ``kind`` about ``key``."""
    return f"{kind}:{key}" if key else kind


def parse_notice(data: str | bytes) -> AnyNotice:
    """A notice from its wire form; raises :class:`pydantic.ValidationError` (or ``ValueError``) on anything else."""
    fields: dict[str, Any] = json.loads(data)
    if not isinstance(fields, dict) or not isinstance(fields.get("topic"), str):
        raise ValueError(f"a notice without a topic: {str(data)[:200]}")
    kind, _, key = fields.pop("topic").partition(":")
    return _notices.validate_python({**fields, "kind": kind, "key": key})
