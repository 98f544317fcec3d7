"""The ways of spending GPUs that the simulation compares, all fed the same observations:

* ``on-demand``: render a scene's clips when a viewer chooses it (first come, first served);
* ``prefetch-all``: when a viewer enters a scene, render every clip of it and of every child,
  the way interactive titles pre-buffer all their segments (first come, first served);
* ``reelfork``: the ``Scheduler`` class of ``server/lookahead/scheduler.py``, fed the same observations the
  server sends it (``viewer_at`` at each clip start and at the end of a scene, with the choices
  below the current scene down to its ``render_depth``, ``viewer_chose``, ``viewer_left``,
  ``job_done``), its ``next_job`` as the queue, its ``decisions()`` drained;
* ``reelfork-metered``: the same scheduler tuned for GPUs paid by the second (``METERED`` in
  ``server/lookahead/tuning.py``, the ``gpu_billing = "metered"`` setting): no speculation on idle slots, a segment
  viewers may skip started as late as it safely can be, and only likely upgrades;
* ``oracle``: knows every viewer's path on arrival and renders exactly what will be watched,
  earliest deadline first, with the same degrade rule (``pick_profile``). It bounds what foresight
  is worth, not everything: it never re-renders a clip it degraded, so later viewers of that clip
  watch it degraded too (reelfork upgrades such clips when a full render fits). It renders whole
  clips, always (the anchor: the earlier simulation's oracle, unchanged);
* ``segment-oracle``: the same foresight, rendering exactly the segments that will be watched;
* ``lead-oracle``: the segment oracle held to what no policy without foresight can skip: it also renders every
  unchosen continuation's lead (:func:`speculative_leads`), due when the choice that rules it out is made. A
  policy that learns a choice only when it is made has at least this work, with less known of it: this schedule
  estimates the most such a policy can reach (an estimate: earliest deadline first is not optimal on several
  GPUs, and like the other oracles it never re-renders a clip it degraded).

The others render what the run's ``Streaming`` says: segments, or whole clips.

:func:`speculation_floor` is the render work, over the oracle's, that no policy without foresight
can go below when it shows every clip (segment) in full and on time.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reelfork.server.lookahead.scheduler import (
    Budget,
    Child,
    Clip,
    Decision,
    Job,
    Scheduler,
    Window,
    job_key,
    pick_profile,
)
from reelfork.server.lookahead.segments import chain_deadlines, lead, segment_offsets
from reelfork.server.lookahead.tuning import METERED

from bench.simulation.world import CLIPS, Model, Streaming, Viewer, World, choice_at, watched_segments

POLICIES = ("on-demand", "prefetch-all", "reelfork", "reelfork-metered", "segment-oracle", "lead-oracle", "oracle")
CLIP_POLICIES = ("oracle",)
"""Those that render whole clips whatever the run streams."""


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

    def wake_at(self) -> float | None:
        """When a slot left idle should ask for work again though nothing happened (None: at the next event)."""
        ...


class Fifo:
    """First come, first served, deduplicated by key, full profile: the queue both baselines use."""

    def __init__(self, full: str, prefetch: bool, streaming: Streaming = CLIPS) -> None:
        self.full = full
        self.prefetch = prefetch
        self.streaming = streaming
        self.queue: deque[Job] = deque()
        self.seen: set[str] = set()

    def add(self, node: str, clips: Sequence[Clip]) -> None:
        segmented = self.streaming.segment_s > 0
        for index, clip in enumerate(clips):
            if clip.rendered:
                continue
            for segment, length in enumerate(self.streaming.lengths(clip.duration_s)):
                key = job_key("render", node, index, segment=segment if segmented else None)
                if key not in self.seen:
                    self.seen.add(key)
                    self.queue.append(Job(key, "render", node, index, length, self.full, 0.0, 0.0, segment))

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

    def wake_at(self) -> float | None:
        return None


class Oracle:
    """Knows each viewer's path on arrival: queues exactly the clips they will watch, earliest deadline first;
    with ``speculate``, also the leads of the continuations they will not take, each due at the choice."""

    def __init__(
        self,
        clock: Clock,
        model: Model,
        world: World,
        streaming: Streaming = CLIPS,
        speculate: bool = False,
    ) -> None:
        self.clock = clock
        self.model = model
        self.profiles = model.profiles()
        self.world = world
        self.streaming = streaming
        self.speculate = speculate
        self.viewers = {viewer.name: viewer for viewer in world.viewers}
        self.deadlines: dict[str, float] = {}
        self.heap: list[tuple[float, str, str, int, float, int]] = []
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
        segmented = self.streaming.segment_s > 0
        for i, clip in enumerate(clips):
            if clip.rendered:
                count = len(self.streaming.lengths(clip.duration_s))
                self.taken.update(job_key("render", node, i, segment=k if segmented else None) for k in range(count))
        plan = self.viewers[viewer]
        at = self.clock.now()
        for step, scene_id in enumerate(plan.path):
            scene = self.world.scenes[scene_id]
            delay = plan.decisions_s[step] if step < len(plan.decisions_s) else None
            lengths = [self.streaming.lengths(duration) for duration in scene.clips]
            starts = [sum(scene.clips[:index]) for index in range(len(scene.clips))]
            rtf = self.profiles[0].rtf
            chains = [
                chain_deadlines(
                    [at + start + offset for offset in segment_offsets(clip)],
                    [rtf * self.streaming.work_s(length) for length in clip],
                )
                for start, clip in zip(starts, lengths, strict=True)
            ]
            for index, segment in watched_segments(self.world, scene, delay, self.streaming):
                self._push(scene_id, index, segment, chains[index][segment])
            at += sum(scene.clips) if delay is None else choice_at(self.world, scene, delay)
            at += plan.unlock_s if step + 1 == plan.paywall else 0.0
        if self.speculate:
            shift = self.clock.now() - plan.arrival
            for scene_id, index, segment, needed_by in speculative_leads(self.world, self.model, plan, self.streaming):
                self._push(scene_id, index, segment, needed_by + shift)

    def _push(self, node: str, index: int, segment: int, due: float) -> None:
        key = job_key("render", node, index, segment=segment if self.streaming.segment_s > 0 else None)
        if due < self.deadlines.get(key, float("inf")) and key not in self.taken:
            self.deadlines[key] = due
            length = self.streaming.lengths(self.world.scenes[node].clips[index])[segment]
            heapq.heappush(self.heap, (due, key, node, index, length, segment))

    def viewer_chose(self, viewer: str, node: str, choice: str) -> None:
        pass

    def viewer_left(self, viewer: str) -> None:
        pass

    def next_job(self, worker: str) -> Job | None:
        while self.heap:
            deadline, key, node, index, duration, segment = heapq.heappop(self.heap)
            if key in self.taken or self.deadlines[key] != deadline:
                continue
            self.taken.add(key)
            work = self.streaming.work_s(duration)
            profile = pick_profile(self.profiles, work, self.clock.now(), deadline).name
            return Job(key, "render", node, index, duration, profile, deadline, deadline, segment)
        return None

    def job_done(self, key: str, seconds: float) -> None:
        pass

    def decisions(self) -> list[Decision]:
        return []

    def wake_at(self) -> float | None:
        return None


def make_policy(name: str, clock: Clock, world: World, model: Model, gpus: int, streaming: Streaming = CLIPS) -> Policy:
    profiles = model.profiles()
    if name in ("reelfork", "reelfork-metered"):
        budget = Budget(gpus, profiles, segment_s=streaming.segment_s, overlap_s=streaming.overlap_s)
        return Scheduler(clock, budget, METERED if name == "reelfork-metered" else None)
    if name in ("oracle", "segment-oracle", "lead-oracle"):
        return Oracle(clock, model, world, streaming, speculate=name == "lead-oracle")
    return Fifo(profiles[0].name, prefetch=name == "prefetch-all", streaming=streaming)


def speculation_floor(world: World, model: Model, streaming: Streaming = CLIPS) -> float:
    """Render work to show every clip in full and on time without knowing the choices, over the work of
    rendering what is watched (the oracle's; first scenes are rendered when published): see :func:`floor_work`."""
    seen, needed = floor_work(world, model, streaming)
    return needed / max(1e-9, seen)


def floor_work(world: World, model: Model, streaming: Streaming = CLIPS) -> tuple[float, float]:
    """GPU seconds (full profile, nominal) to render what is watched, and what no policy without foresight
    renders less than: that and the speculation (:func:`speculative_leads`, every viewer's). Degrading a few
    clips (which the report allows, up to ``MAX_DEGRADED``) can go below it."""
    seen, needed, _ = _floor_units(world, model, streaming)
    return _seconds(world, model, streaming, seen), _seconds(world, model, streaming, seen | needed)


def online_floor_work(world: World, model: Model, streaming: Streaming = CLIPS) -> float:
    """:func:`floor_work`'s floor and the segments a viewer skips by choosing early that a policy without
    foresight must have begun before that choice (:func:`committed_tails`): the floor without knowing when a
    viewer will choose."""
    seen, needed, tails = _floor_units(world, model, streaming)
    return _seconds(world, model, streaming, seen | needed | tails)


Unit = tuple[str, int, int]
"""A scene, one of its clips, and one of that clip's segments (0 in whole clips)."""
Units = set[Unit]


@dataclass(frozen=True)
class WorkSplit:
    """A policy's render work (GPU seconds, as rendered: degraded segments cost less) by what it was for, against
    the floor's units (:func:`floor_work`, :func:`online_floor_work`)."""

    watched: float
    """First renders of segments somebody watched."""
    leads: float
    """Unwatched speculation the floor counts: every unchosen continuation's lead."""
    tails: float
    """Segments skipped by early choosers that had to be begun before the choice (:func:`committed_tails`)."""
    other: float
    """Every other first render: speculation past the leads, and segments begun before they had to be."""
    upgrades: float
    """Re-renders of degraded segments in the best profile."""


def split_work(
    world: World, model: Model, streaming: Streaming, rendered_s: dict[Unit, float], upgrades_s: float
) -> WorkSplit:
    """:class:`WorkSplit` of the first renders' GPU seconds by unit (``Outcome.rendered_s``) and the upgrades'."""
    seen, needed, tails = _floor_units(world, model, streaming)
    shares = dict.fromkeys(("watched", "leads", "tails", "other"), 0.0)
    for unit, seconds in rendered_s.items():
        kind = "watched" if unit in seen else "leads" if unit in needed else "tails" if unit in tails else "other"
        shares[kind] += seconds
    return WorkSplit(**shares, upgrades=upgrades_s)


def _floor_units(world: World, model: Model, streaming: Streaming) -> tuple[Units, Units, Units]:
    roots = set(world.roots)
    seen: Units = set()
    needed: Units = set()
    tails: Units = set()
    for viewer in world.viewers:
        for step, n in enumerate(viewer.path):
            delay = viewer.decisions_s[step] if step < len(viewer.decisions_s) else None
            if n not in roots:
                seen.update((n, c, k) for c, k in watched_segments(world, world.scenes[n], delay, streaming))
        needed.update((node, clip, k) for node, clip, k, _ in speculative_leads(world, model, viewer, streaming))
        tails.update(unit for unit in committed_tails(world, model, viewer, streaming) if unit[0] not in roots)
    return seen, needed, tails


def _seconds(world: World, model: Model, streaming: Streaming, units: Units) -> float:
    lengths = (streaming.lengths(world.scenes[node].clips[clip])[k] for node, clip, k in units)
    return sum(model.rtf * streaming.work_s(length) for length in lengths)


def committed_tails(
    world: World, model: Model, viewer: Viewer, streaming: Streaming = CLIPS
) -> list[tuple[str, int, int]]:
    """The segments of the scenes on ``viewer``'s path that they skip by choosing early, but that had to be begun
    before they chose: not knowing when a viewer will choose, a policy that shows every segment on time must start
    each one by its latest start (each rendered after the one before it), chosen or not by then."""
    out: list[tuple[str, int, int]] = []
    for step, node in enumerate(viewer.path):
        delay = viewer.decisions_s[step] if step < len(viewer.decisions_s) else None
        if delay is None:
            continue
        scene = world.scenes[node]
        leaves = choice_at(world, scene, delay)
        watched = set(watched_segments(world, scene, delay, streaming))
        clip_start = 0.0
        for index, duration in enumerate(scene.clips):
            clip = streaming.lengths(duration)
            costs = [model.rtf * streaming.work_s(length) for length in clip]
            chain = chain_deadlines([clip_start + offset for offset in segment_offsets(clip)], costs)
            out.extend(
                (node, index, k)
                for k in range(len(clip))
                if (index, k) not in watched and chain[k] - costs[k] < leaves
            )
            clip_start += duration
    return out


def speculative_leads(
    world: World, model: Model, viewer: Viewer, streaming: Streaming = CLIPS
) -> list[tuple[str, int, int, float]]:
    """What a policy without foresight must render for ``viewer`` before each of their choices, whichever way they
    go: (scene, clip, segment, when it is needed at the latest: the choice's time, from their arrival on).

    After a viewer's choice out of a scene is known, until their next one, the policy knows where
    they are but not where they go. Whatever of a continuation from there must be rendered before that
    next choice, to be ready when it is due, must be rendered whichever way they go. In whole clips: a
    clip whose full render (``rtf * duration``) must start before the choice; the first clips of every
    child always, and for a slow model some of every grandchild's when a scene is shorter than its
    children's renders. In segments: each clip's lead (:func:`reelfork.server.lookahead.segments.lead`),
    the segments that keep its stream ahead of playback when the rest is rendered one after another
    from the choice on. Due times take the viewer's own decision times (the ones the simulation uses,
    in each scene's choice window; what a viewer skips by choosing early counts neither as watched nor
    as needed) down every continuation, and nominal render times, so this is generous to the policy.
    The chosen continuation's lead is among them: it is watched too.
    """
    longest = max((duration for scene in world.scenes.values() for duration in scene.clips), default=0.0)
    chosen = choice_times(world, viewer)
    out: list[tuple[str, int, int, float]] = []
    for step, node in enumerate(viewer.path[:-1]):
        known_until = chosen[step + 1]
        # (scene, when the viewer would enter it, its step on their path)
        ahead = [(child, known_until, step + 1) for child in world.scenes[node].children]
        while ahead:
            scene_id, entered, scene_step = ahead.pop()
            scene = world.scenes[scene_id]
            delay = viewer.decisions_s[scene_step] if scene_step < len(viewer.decisions_s) else None
            watched = set(watched_segments(world, scene, delay, streaming))
            clip_start = entered
            for index, duration in enumerate(scene.clips):
                clip = streaming.lengths(duration)
                costs = [model.rtf * streaming.work_s(length) for length in clip]
                count = lead(costs, segment_offsets(clip), clip_start - known_until)
                out.extend((scene_id, index, k, known_until) for k in range(count) if (index, k) in watched)
                clip_start += duration
            if delay is not None and scene.children:
                after = entered + choice_at(world, scene, delay)
                if after - model.rtf * streaming.work_s(longest) < known_until:
                    ahead.extend((child, after, scene_step + 1) for child in scene.children)
    return out


def choice_times(world: World, viewer: Viewer) -> list[float]:
    """When each scene on the viewer's path starts (when they chose it), if no clip ever stalls."""
    times = [viewer.arrival]
    for step, node in enumerate(viewer.path[:-1]):
        unlock = viewer.unlock_s if step + 1 == viewer.paywall else 0.0
        times.append(times[-1] + choice_at(world, world.scenes[node], viewer.decisions_s[step]) + unlock)
    return times
