"""Publishing a story off the event loop: parse, validate and serialise in a worker process.

A 100,000-scene story takes seconds of CPU to parse and validate, most of it pydantic holding the GIL, so
it runs in a process of its own; the server's loop gets back a :class:`Prepared` of plain values: the
stored JSON, its digest, summarised findings, and the few scenes warm-up may queue.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

from pydantic import BaseModel
from reelfork.narrative.formats import StoryError, StoryFormat, load_story
from reelfork.narrative.problems import Problem, Severity
from reelfork.narrative.story import Scene, Story
from reelfork.server.store import packed

LISTED = 100
"""Findings listed one by one in a response; the rest are counted by kind."""


class Finding(BaseModel):
    severity: Severity
    where: str
    message: str


class Findings(BaseModel):
    """At most :data:`LISTED` findings, errors first, and how many there are of each message."""

    listed: list[Finding]
    total: int
    counts: dict[str, int]
    """Message -> how many findings have it (``"unreachable from the start scene": 90000``)."""


class Prepared(BaseModel):
    """A story ready to store, or the reasons it cannot be."""

    story_id: str = ""
    document: str = ""
    """The story's JSON as stored (:func:`reelfork.server.store.packed`: compressed when large)."""
    digest: str = ""
    excerpt: Story | None = None
    """The story with only the scenes warm-up may queue (the earliest from the start); None when refused."""
    warnings: Findings
    errors: Findings | None = None


def summarise(problems: Sequence[Problem]) -> Findings:
    """The first :data:`LISTED` problems and counts by message."""
    listed = [Finding(severity=p.severity, where=p.where, message=p.message) for p in problems[:LISTED]]
    return Findings(listed=listed, total=len(problems), counts=dict(Counter(p.message for p in problems)))


def earliest_scenes(story: Story, budget: int) -> list[Scene]:
    """Up to ``budget`` scenes, breadth-first from the start: those a viewer reaches first."""
    by_id = {scene.id: scene for scene in story.scenes}
    order: list[Scene] = []
    seen = {story.start}
    todo = deque([story.start])
    while todo and len(order) < budget:
        scene = by_id.get(todo.popleft())
        if scene is None:
            continue
        order.append(scene)
        for choice in scene.choices:
            if choice.target is not None and choice.target not in seen:
                seen.add(choice.target)
                todo.append(choice.target)
    return order


def prepare(body: bytes, kind: StoryFormat, warm_budget: int) -> Prepared:
    """Parse (or import), validate and serialise ``body``; runs in a worker process."""
    try:
        story, warnings = load_story(body, source="body", kind=kind)
    except StoryError as exc:
        return Prepared(warnings=summarise([]), errors=summarise(exc.problems))
    excerpt = story.excerpt(earliest_scenes(story, warm_budget))
    return Prepared(
        story_id=story.id,
        document=packed(story.model_dump_json()),
        digest=story.digest(),
        excerpt=excerpt,
        warnings=summarise(warnings),
    )
