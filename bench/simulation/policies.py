"""The ways of spending GPUs that the simulation compares, all fed the same observations:

* ``on-demand``: render a scene's clips when a viewer chooses it (first come, first served);
* ``prefetch-all``: when a viewer enters a scene, render every clip of it and of every child,
  the way interactive titles pre-buffer all their segments (first come, first served);
* ``reelfork``: the ``Scheduler`` class of ``server/scheduler.py``, fed the same observations the
  server sends it (``viewer_at`` at each clip start and at the end of a scene, with the choices
  below the current scene down to its ``render_depth``, ``viewer_chose``, ``viewer_left``,
  ``job_done``), its ``next_job`` as the queue, its ``decisions()`` drained;
* ``oracle``: knows every viewer's path on arrival and renders exactly what will be watched,
  earliest deadline first, with the same degrade rule (``pick_profile``). It bounds the others.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from bench.simulation.world import Model, World
from server.scheduler import Budget, Child, Clip, Decision, Job, Profile, Scheduler, job_key, pick_profile

POLICIES = ("on-demand", "prefetch-all", "reelfork", "oracle")


class Clock:
    """Simulated time: the event loop sets it, policies read it through ``now()``."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time


class Policy(Protocol):
    def viewer_at(
        self, viewer: str, node: str, position_s: float, clips: Sequence[Clip], children: Sequence[Child]
    ) -> None: ...

    def viewer_chose(self, viewer: str, node: str, choice: str) -> None: ...

    def viewer_left(self, viewer: str) -> None: ...

    def next_job(self, worker: str) -> Job | None: ...

    def job_done(self, key: str, seconds: float) -> None: ...

    def decisions(self) -> list[Decision]: ...


class Fifo:
    """First come, first served, deduplicated by key, full profile: the queue both baselines use."""

    def __init__(self, full: str, prefetch: bool) -> None:
        self.full = full
        self.prefetch = prefetch
        self.queue: deque[Job] = deque()
        self.seen: set[str] = set()

    def add(self, node: str, clips: Sequence[Clip]) -> None:
        for index, clip in enumerate(clips):
            key = job_key("render", node, index)
            if not clip.rendered and key not in self.seen:
                self.seen.add(key)
                self.queue.append(Job(key, "render", node, index, clip.duration_s, self.full, 0.0, 0.0))

    def viewer_at(
        self, viewer: str, node: str, position_s: float, clips: Sequence[Clip], children: Sequence[Child]
    ) -> None:
        self.add(node, clips)
        if self.prefetch:
            for child in children:
                self.add(child.node, child.clips)

    def viewer_chose(self, viewer: str, node: str, choice: str) -> None:
        pass

    def viewer_left(self, viewer: str) -> None:
        pass

    def next_job(self, worker: str) -> Job | None:
        return self.queue.popleft() if self.queue else None

    def job_done(self, key: str, seconds: float) -> None:
        pass

    def decisions(self) -> list[Decision]:
        return []


class Oracle:
    """Knows each viewer's path on arrival: queues exactly the clips they will watch, earliest deadline first."""

    def __init__(self, clock: Clock, profiles: tuple[Profile, ...], world: World) -> None:
        self.clock = clock
        self.profiles = profiles
        self.world = world
        self.viewers = {viewer.name: viewer for viewer in world.viewers}
        self.deadlines: dict[str, float] = {}
        self.heap: list[tuple[float, str, str, int, float]] = []
        self.taken: set[str] = set()
        self.started: set[str] = set()

    def viewer_at(
        self, viewer: str, node: str, position_s: float, clips: Sequence[Clip], children: Sequence[Child]
    ) -> None:
        if viewer in self.started:
            return
        self.started.add(viewer)
        self.taken.update(job_key("render", node, i) for i, clip in enumerate(clips) if clip.rendered)
        plan = self.viewers[viewer]
        at = self.clock.now()
        for step, scene_id in enumerate(plan.path):
            scene = self.world.scenes[scene_id]
            for index, duration in enumerate(scene.clips):
                key = job_key("render", scene_id, index)
                if at < self.deadlines.get(key, float("inf")) and key not in self.taken:
                    self.deadlines[key] = at
                    heapq.heappush(self.heap, (at, key, scene_id, index, duration))
                at += duration
            at += plan.decisions_s[step] if step < len(plan.decisions_s) else 0.0

    def viewer_chose(self, viewer: str, node: str, choice: str) -> None:
        pass

    def viewer_left(self, viewer: str) -> None:
        pass

    def next_job(self, worker: str) -> Job | None:
        while self.heap:
            deadline, key, node, index, duration = heapq.heappop(self.heap)
            if key in self.taken or self.deadlines[key] != deadline:
                continue
            self.taken.add(key)
            profile = pick_profile(self.profiles, duration, self.clock.now(), deadline).name
            return Job(key, "render", node, index, duration, profile, deadline, deadline)
        return None

    def job_done(self, key: str, seconds: float) -> None:
        pass

    def decisions(self) -> list[Decision]:
        return []


def make_policy(name: str, clock: Clock, world: World, model: Model, gpus: int) -> Policy:
    profiles = model.profiles()
    if name == "reelfork":
        return Scheduler(clock, Budget(render_slots=gpus, profiles=profiles))
    if name == "oracle":
        return Oracle(clock, profiles, world)
    return Fifo(profiles[0].name, prefetch=name == "prefetch-all")
