"""The lookahead scheduler in the server: viewers' positions and choices in, queue changes out.

One :class:`Lookahead` per replica wraps a :class:`server.scheduler.Scheduler` (the policy
``bench/simulate.py`` measures) on the wall clock. The play connections tell it where each viewer
is (a scene presented, a ``progress`` message), what they chose and when they left; the workers'
``clip:``/``written:``/``failed:`` notices tell it what is done. It applies the scheduler's
decisions to the shared Redis queue as this replica's wishes (:meth:`JobQueue.want` /
:meth:`JobQueue.unwant`), so a job another replica still wants is never dropped or delayed by this
one: it leaves the queue only when nobody wants it, and a leased job always finishes.

What the scheduler sees of a story: a node per scene (a written scene's id, or an authored one's
within its story version), one clip per scene, the viewer's available choices, and below them every
choice of the scenes further down (conditions are not evaluated there: speculation has no side
effects, and wanting a little too much only costs a queued job). One render profile: the workers
render in the server's profile, so the scheduler orders and cancels but does not degrade.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from narrative.state import ViewerState, available_choices, generated_scene_id, is_generated
from narrative.story import Choice, Scene
from server.director import Director
from server.jobs import JobQueue, Kind
from server.scheduler import Budget, Cancel, Child, Clip, Decision, Profile, Scheduler, Tuning, job_key
from server.store import StoryVersion

log = logging.getLogger(__name__)

CLIP_ESTIMATE_S = 8.0
"""A clip's duration before it is rendered."""
RENDER_RTF = 1.0
"""Render seconds per clip second assumed until workers report how long their renders took."""
DEPTH = 2
"""Levels of scenes below the current one that are looked at (and rendered ahead when likely)."""
MAX_TARGETS = 50_000


class WallClock:
    def now(self) -> float:
        return time.time()


@dataclass(frozen=True)
class Target:
    """What a scheduler job is in the shared queue."""

    kind: Kind
    key: str
    payload: dict[str, Any]


def node_of(story: StoryVersion, scene_id: str) -> str:
    """A scene's name in the scheduler: written scene ids are global, authored ones per story version."""
    return scene_id if is_generated(scene_id) else f"{story.digest[:16]}:{scene_id}"


class Lookahead:
    def __init__(self, director: Director, queue: JobQueue, replica: str, render_slots: int) -> None:
        self.director = director
        self.store = director.store
        self.queue = queue
        self.replica = replica
        profile = Profile(director.profile_name, RENDER_RTF)
        budget = Budget(render_slots=max(1, render_slots), profiles=(profile,))
        # The workers retry failed jobs themselves: their ``failed:`` notice is final.
        self.scheduler = Scheduler(WallClock(), budget, Tuning(max_attempts=1, render_depth=DEPTH))
        self._targets: OrderedDict[str, Target] = OrderedDict()
        self._clip_jobs: dict[str, str] = {}
        """Clip key → scheduler job key, to read the workers' ``clip:`` notices."""
        self._lock = asyncio.Lock()
        """Decisions reach Redis in the order the scheduler made them."""
        self._counted: set[str] = set()

    # -- observations ------------------------------------------------------------------------

    async def viewer_at(
        self, viewer: str, story: StoryVersion, state: ViewerState, scene: Scene, position_s: float
    ) -> None:
        """``viewer`` is ``position_s`` seconds into ``scene``'s clip (0 when it is presented)."""
        await self._load_counts(story)
        choices = available_choices(scene, state)
        children = await self._children(story, state.path, state.generated_depth, choices, DEPTH)
        (clip,) = await self._clips(story, [scene])
        async with self._lock:
            self.scheduler.viewer_at(viewer, node_of(story, scene.id), position_s, (clip,), children)
            await self._apply(self.scheduler.decisions())

    async def viewer_chose(self, viewer: str, story: StoryVersion, scene_id: str, choice_id: str) -> None:
        async with self._lock:
            self.scheduler.viewer_chose(viewer, node_of(story, scene_id), choice_id)
            await self._apply(self.scheduler.decisions())

    async def viewer_left(self, viewer: str) -> None:
        async with self._lock:
            self.scheduler.viewer_left(viewer)
            await self._apply(self.scheduler.decisions())

    def on_event(self, event: dict[str, Any]) -> None:
        """A worker's notice (see :class:`server.events.Events`): a clip rendered, a scene written, a job given up."""
        kind, _, key = str(event.get("topic", "")).partition(":")
        if kind == "clip":
            job = self._clip_jobs.pop(key, None)
            if job is not None:
                estimate = RENDER_RTF * float(event.get("duration") or CLIP_ESTIMATE_S)
                self.scheduler.job_done(job, float(event.get("seconds") or estimate))
        elif kind == "written":
            self.scheduler.job_done(job_key("write", key), float(event.get("seconds") or self.scheduler.budget.write_s))
        elif kind == "failed":
            self.scheduler.job_failed(self._clip_jobs.pop(key, job_key("write", key)))

    # -- the story as the scheduler sees it --------------------------------------------------

    async def _load_counts(self, story: StoryVersion) -> None:
        """The audience's choices so far (all replicas, before this one started), once per story version;
        later ones made on other replicas are not seen: probabilities are this replica's estimate."""
        if story.digest in self._counted:
            return
        self._counted.add(story.digest)
        for (scene_id, choice_id), times in (await self.store.choice_counts(story)).items():
            self.scheduler.count(node_of(story, scene_id), choice_id, times)

    async def _children(
        self, story: StoryVersion, path: list[str], generated: int, choices: Sequence[Choice], depth: int
    ) -> tuple[Child, ...]:
        """The scenes ``choices`` lead to, written or not, with their own choices ``depth - 1`` levels down."""
        parent = path[-1]
        found: list[tuple[Choice, str, Scene | None]] = []
        for choice in choices:
            target = choice.target or generated_scene_id(story.digest, parent, choice.id)
            scene = await self.director.scene(story, target)
            if scene is not None or is_generated(target):
                found.append((choice, target, scene))
        clips = iter(await self._clips(story, [scene for _, _, scene in found if scene is not None]))
        children: list[Child] = []
        for choice, target, scene in found:
            depth_below = generated + 1 if is_generated(target) else 0
            if scene is None:
                must_end = depth_below >= story.story.open_depth
                payload = {
                    "story": story.story.id,
                    "version": story.version,
                    "path": path,
                    "choice": choice.id,
                    "scene": target,
                    "must_end": must_end,
                }
                self._remember(job_key("write", target), Target("write", target, payload))
                children.append(Child(choice.id, target, (Clip(CLIP_ESTIMATE_S),), written=False))
                continue
            clip = next(clips)
            below: tuple[Child, ...] = ()
            if depth > 1 and not scene.ending:
                below = await self._children(story, [*path, scene.id], depth_below, scene.choices, depth - 1)
            children.append(Child(choice.id, node_of(story, scene.id), (clip,), True, below))
        return tuple(children)

    async def _clips(self, story: StoryVersion, scenes: Sequence[Scene]) -> list[Clip]:
        """Each scene's one clip as the scheduler sees it; remembers how to queue its render."""
        keys = [self.director.clip_key(story, scene) for scene in scenes]
        stored = await self.store.clips(keys) if keys else []
        clips: list[Clip] = []
        for scene, key, clip in zip(scenes, keys, stored, strict=True):
            job = job_key("render", node_of(story, scene.id))
            payload = {"story": story.story.id, "version": story.version, "scene": scene.id, "clip": key}
            self._remember(job, Target("render", key, payload))
            self._clip_jobs[key] = job
            if clip is not None:
                clips.append(Clip(clip.duration, rendered=True, profile=self.director.profile_name))
            else:
                clips.append(Clip(CLIP_ESTIMATE_S))
        return clips

    def _remember(self, job: str, target: Target) -> None:
        self._targets[job] = target
        self._targets.move_to_end(job)
        while len(self._targets) > MAX_TARGETS:
            _, old = self._targets.popitem(last=False)
            self._clip_jobs.pop(old.key, None)

    # -- decisions to the queue --------------------------------------------------------------

    async def _apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            target = self._targets.get(decision.key)
            if target is None:
                log.warning("scheduler decided on %s, which this replica no longer knows", decision.key)
                continue
            # One wish per scheduler job: two scenes sharing one clip are two wishes, withdrawn apart.
            wanter = f"{self.replica}/{decision.key}"
            if isinstance(decision, Cancel):
                await self.queue.unwant(target.kind, target.key, wanter)
            else:
                await self.queue.want(target.kind, target.key, target.payload, decision.score, wanter)
