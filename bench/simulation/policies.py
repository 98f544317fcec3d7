"""The ways of spending GPUs that the simulation compares, all fed the same observations:

* ``on-demand``: render a scene's clips when a viewer chooses it (first come, first served);
* ``prefetch-all``: when a viewer enters a scene, render every clip of it and of every child,
  the way interactive titles pre-buffer all their segments (first come, first served);
* ``reelfork``: the ``Scheduler`` class of ``server/lookahead/scheduler.py``, fed the same observations the
  server sends it (``viewer_at`` at each clip start and at the end of a scene, with the choices
  below the current scene down to its ``render_depth``, ``viewer_chose``, ``viewer_left``,
  ``job_done``), its ``next_job`` as the queue, its ``decisions()`` drained;
* ``oracle``: knows every viewer's path on arrival and renders exactly what will be watched,
  earliest deadline first, with the same degrade rule (``pick_profile``). It bounds what foresight
  is worth, not everything: it never re-renders a clip it degraded, so later viewers of that clip
  watch it degraded too (reelfork upgrades such clips when a full render fits).

:func:`speculation_floor` is the render work, over the oracle's, that no policy without foresight
can go below when it shows every clip in full and on time.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from reelfork.server.lookahead.scheduler import (
    Budget,
    Child,
    Clip,
    Decision,
    Job,
    Profile,
    Scheduler,
    Window,
    job_key,
    pick_profile,
)

from bench.simulation.world import Model, Viewer, World, choice_at, watched

POLICIES = ("on-demand", "prefetch-all", "reelfork", "oracle")


class Clock:
    """Simulated time: the event loop sets it, policies read it through ``now()``."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time


class Policy(Protocol):
    def viewer_at(
        self,
        viewer: str,
        node: str,
        position_s: float,
        clips: Sequence[Clip],
        children: Sequence[Child],
        window: Window | None = None,
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
        self,
        viewer: str,
        node: str,
        position_s: float,
        clips: Sequence[Clip],
        children: Sequence[Child],
        window: Window | None = None,
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
        self,
        viewer: str,
        node: str,
        position_s: float,
        clips: Sequence[Clip],
        children: Sequence[Child],
        window: Window | None = None,
    ) -> None:
        if viewer in self.started:
            return
        self.started.add(viewer)
        self.taken.update(job_key("render", node, i) for i, clip in enumerate(clips) if clip.rendered)
        plan = self.viewers[viewer]
        at = self.clock.now()
        for step, scene_id in enumerate(plan.path):
            scene = self.world.scenes[scene_id]
            delay = plan.decisions_s[step] if step < len(plan.decisions_s) else None
            offset = 0.0
            for index in range(watched(self.world, scene, delay)):
                key = job_key("render", scene_id, index)
                due = at + offset
                if due < self.deadlines.get(key, float("inf")) and key not in self.taken:
                    self.deadlines[key] = due
                    heapq.heappush(self.heap, (due, key, scene_id, index, scene.clips[index]))
                offset += scene.clips[index]
            at += sum(scene.clips) if delay is None else choice_at(self.world, scene, delay)
            at += plan.unlock_s if step + 1 == plan.paywall else 0.0

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


def speculation_floor(world: World, model: Model) -> float:
    """Clip-seconds rendered to show every clip in full and on time without knowing the choices,
    over the clip-seconds watched (the oracle's work; first scenes are rendered when published).

    After a viewer's choice out of a scene is known, until their next one, the policy knows where
    they are but not where they go. A clip of any continuation from there whose full render
    (``rtf * duration``) must start before that next choice, to be ready when it is due, must be
    rendered whichever way they go: the first clips of every child always, and for a slow model
    some of every grandchild's when a scene is shorter than its children's renders. Due times take
    the viewer's own decision times (the ones the simulation uses, in each scene's choice window;
    clips a viewer skips by choosing early count neither as watched nor as needed) down every
    continuation, and nominal render times, so the floor is generous to the policy. Degrading a few clips (which the
    report allows, up to ``MAX_DEGRADED``) can go below it.
    """
    roots = set(world.roots)
    longest = max((duration for scene in world.scenes.values() for duration in scene.clips), default=0.0)
    seen: set[tuple[str, int]] = set()
    needed: set[tuple[str, int]] = set()
    for viewer in world.viewers:
        for step, n in enumerate(viewer.path):
            delay = viewer.decisions_s[step] if step < len(viewer.decisions_s) else None
            seen.update((n, i) for i in range(watched(world, world.scenes[n], delay)) if n not in roots)
        chosen = choice_times(world, viewer)
        for step, node in enumerate(viewer.path[:-1]):
            known_until = chosen[step + 1]
            # (scene, when the viewer would enter it, its step on their path)
            ahead = [(child, known_until, step + 1) for child in world.scenes[node].children]
            while ahead:
                scene_id, entered, scene_step = ahead.pop()
                scene = world.scenes[scene_id]
                delay = viewer.decisions_s[scene_step] if scene_step < len(viewer.decisions_s) else None
                offset = 0.0
                for index in range(watched(world, scene, delay)):
                    duration = scene.clips[index]
                    if entered + offset - model.rtf * duration < known_until:
                        needed.add((scene_id, index))
                    offset += duration
                if delay is not None and scene.children:
                    after = entered + choice_at(world, scene, delay)
                    if after - model.rtf * longest < known_until:
                        ahead.extend((child, after, scene_step + 1) for child in scene.children)

    def seconds(clips: set[tuple[str, int]]) -> float:
        return sum(world.scenes[node].clips[index] for node, index in clips)

    return seconds(seen | needed) / max(1e-9, seconds(seen))


def choice_times(world: World, viewer: Viewer) -> list[float]:
    """When each scene on the viewer's path starts (when they chose it), if no clip ever stalls."""
    times = [viewer.arrival]
    for step, node in enumerate(viewer.path[:-1]):
        unlock = viewer.unlock_s if step + 1 == viewer.paywall else 0.0
        times.append(times[-1] + choice_at(world, world.scenes[node], viewer.decisions_s[step]) + unlock)
    return times
