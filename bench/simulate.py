"""Discrete-event simulation of rendering ahead of playback, driving the real ``server.scheduler.Scheduler``.

Run from the repository root:

    . .venv/bin/activate
    python bench/simulate.py            # full run, a few minutes on one core
    python bench/simulate.py --quick    # smaller audiences, under a minute

It compares four ways of spending G GPUs on V viewers, on the same seeded stories and the same
viewers making the same choices at the same times:

* ``on-demand``: render a scene's clips when a viewer chooses it (first come, first served);
* ``prefetch-all``: when a viewer enters a scene, render every clip of it and of every child,
  the way interactive titles pre-buffer all their segments (first come, first served);
* ``reelfork``: the ``Scheduler`` class of ``server/scheduler.py``, fed the same observations the
  server sends it (``viewer_at`` at each clip start and at the end of a scene, with the choices
  below the current scene down to its ``render_depth``, ``viewer_chose``, ``viewer_left``,
  ``job_done``), its ``next_job`` as the queue, its ``decisions()`` drained;
* ``oracle``: knows every viewer's path on arrival and renders exactly what will be watched,
  earliest deadline first, with the same degrade rule (``pick_profile``). It bounds the others.

For each it prints the stall rate (share of clip transitions where the next clip was not ready),
p99 stall seconds (over all transitions), GPU utilisation, the share of renders never watched, the
share of watched clips in a degraded profile, and viewers per GPU at <= 1% stall: V over the
fewest GPUs (searched: doubling, then bisection) at which the stall rate is <= 1% and at most 5%
of watched clips are degraded. Then the sharing factor: viewers per GPU with a 10,000-viewer
audience on one story over viewers per GPU when every viewer is alone on their own story.
Figures go to ``bench/results/simulate.json``, with each model's speculation floor: the render work,
relative to the oracle's, that any policy without foresight does to show every clip in full and on
time (it must render the chosen child's first clips before the choice is known, so every child's).

Assumptions (all seeded, all overridable in ``Scenario``):

* Stories are layered graphs, depth 8-12 scenes, 2-4 choices per scene. Branches fold back the
  way authored branching stories do (branch and bottleneck): a layer holds at most ``width``
  scenes, later choices lead into existing ones. A scene is 1-3 clips of 5-10 s.
* Audiences choose by Zipf (exponent 1.0) over a scene's choices, in a random order per scene:
  with three choices 55% / 27% / 18%. A viewer decides 1-5 s after a scene ends; 5% let the 10 s
  timeout choose for them. Stories' popularity in a catalogue is Zipf (exponent 1.0) too.
* Arrivals are uniform over a window. Each story's first scene is rendered when it is published.
* Render cost: real-time factor (render seconds per clip second, one GPU) 0.4 for an LTX-class
  model on an H100 (LTX-Video renders 5 s of 768x512 in about 2 s), and 1.5 for a slower
  Wan-class distilled model (our assumption: between 1 and 2). The scheduler degrades to ``fast``
  (fewer steps, lower resolution: 0.35x the cost) and ``animatic`` (0.05x) when ``full`` would
  miss a deadline. Each render's time varies +-15% around that, seeded by its key.
* Story text is already written (authored or written ahead by the LLM, whose capacity is separate
  from the GPUs'); writing two levels ahead is covered by the unit tests, not by this simulation.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.scheduler import (  # noqa: E402
    Budget,
    Cancel,
    Child,
    Clip,
    Decision,
    Job,
    Profile,
    Scheduler,
    Tuning,
    job_key,
    pick_profile,
)

RESULTS = ROOT / "bench" / "results" / "simulate.json"
POLICIES = ("on-demand", "prefetch-all", "reelfork", "oracle")
MAX_STALL_RATE = 0.01
MAX_DEGRADED = 0.05
MAX_GPUS = 4096
FAST_COST = 0.35
ANIMATIC_COST = 0.05


# -- the world -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    viewers: int = 500
    window_s: float = 400.0
    stories: int = 10
    """Catalogue size; 0 puts every viewer alone on a story of their own."""
    depth: tuple[int, int] = (8, 12)
    branching: tuple[int, int] = (2, 4)
    width: int = 24
    clips: tuple[int, int] = (1, 3)
    clip_s: tuple[float, float] = (5.0, 10.0)
    zipf: float = 1.0
    decision_s: tuple[float, float] = (1.0, 5.0)
    timeout_s: float = 10.0
    timeout_share: float = 0.05
    seed: int = 7


@dataclass(frozen=True)
class Model:
    name: str
    rtf: float

    def profiles(self) -> tuple[Profile, ...]:
        return (
            Profile("full", self.rtf),
            Profile("fast", self.rtf * FAST_COST),
            Profile("animatic", self.rtf * ANIMATIC_COST),
        )


LTX = Model("ltx-class (rtf 0.4)", 0.4)
WAN = Model("wan-class (rtf 1.5)", 1.5)


@dataclass(frozen=True)
class Scene:
    node: str
    clips: tuple[float, ...]
    children: tuple[str, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class Viewer:
    name: str
    arrival: float
    path: tuple[str, ...]
    """Scenes in the order this viewer watches them, the story's first scene first."""
    choices: tuple[int, ...]
    decisions_s: tuple[float, ...]


@dataclass(frozen=True)
class World:
    scenes: dict[str, Scene]
    roots: tuple[str, ...]
    viewers: tuple[Viewer, ...]


def zipf_weights(rng: random.Random, count: int, exponent: float) -> tuple[float, ...]:
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)
    raw = [1.0 / rank**exponent for rank in ranks]
    return tuple(w / sum(raw) for w in raw)


def make_story(rng: random.Random, name: str, scenario: Scenario) -> dict[str, Scene]:
    """A layered story graph whose layers hold at most ``width`` scenes (later choices fold back)."""
    depth = rng.randint(*scenario.depth)
    layers: list[list[str]] = [[f"{name}/0.0"]]
    links: dict[str, list[str]] = {}
    for level in range(1, depth):
        layer: list[str] = []
        for parent in layers[-1]:
            children: list[str] = []
            for _ in range(rng.randint(*scenario.branching)):
                spare = [n for n in layer if n not in children]
                if len(layer) < scenario.width or not spare:
                    layer.append(f"{name}/{level}.{len(layer)}")
                    children.append(layer[-1])
                else:
                    children.append(rng.choice(spare))
            links[parent] = children
        layers.append(layer)
    scenes: dict[str, Scene] = {}
    for layer in layers:
        for node in layer:
            clips = tuple(round(rng.uniform(*scenario.clip_s), 2) for _ in range(rng.randint(*scenario.clips)))
            choices = tuple(links.get(node, []))
            scenes[node] = Scene(node, clips, choices, zipf_weights(rng, len(choices), scenario.zipf))
    return scenes


def make_world(scenario: Scenario) -> World:
    rng = random.Random(scenario.seed)
    alone = scenario.stories == 0
    scenes: dict[str, Scene] = {}
    roots: list[str] = []
    for index in range(0 if alone else scenario.stories):
        story = make_story(random.Random(rng.random()), f"s{index}", scenario)
        scenes.update(story)
        roots.append(f"s{index}/0.0")
    popularity = [1.0 / rank**scenario.zipf for rank in range(1, len(roots) + 1)]
    viewers: list[Viewer] = []
    arrivals = sorted(rng.uniform(0.0, scenario.window_s) for _ in range(scenario.viewers))
    for number, arrival in enumerate(arrivals):
        own = random.Random(rng.random())
        if alone:
            scenes.update(make_story(own, f"v{number}", scenario))
            roots.append(f"v{number}/0.0")
            root = roots[-1]
        else:
            root = own.choices(roots, weights=popularity)[0]
        viewers.append(walk(own, f"v{number}", arrival, root, scenes, scenario))
    return World(scenes, tuple(roots), tuple(viewers))


def walk(rng: random.Random, name: str, arrival: float, root: str, scenes: dict[str, Scene], s: Scenario) -> Viewer:
    path, choices, decisions = [root], [], []
    while scenes[path[-1]].children:
        scene = scenes[path[-1]]
        choice = rng.choices(range(len(scene.children)), weights=scene.weights)[0]
        path.append(scene.children[choice])
        choices.append(choice)
        timeout = rng.random() < s.timeout_share
        decisions.append(s.timeout_s if timeout else round(rng.uniform(*s.decision_s), 2))
    return Viewer(name, arrival, tuple(path), tuple(choices), tuple(decisions))


# -- policies --------------------------------------------------------------------------------


class Clock:
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


# -- the simulation --------------------------------------------------------------------------


@dataclass
class Outcome:
    policy: str
    gpus: int
    viewers: int
    transitions: int = 0
    stalls: list[float] = field(default_factory=list)
    renders: int = 0
    renders_unwatched: int = 0
    rendered_twice: int = 0
    watched_unrendered: int = 0
    degraded: int = 0
    gpu_busy_s: float = 0.0
    span_s: float = 0.0
    cancels: int = 0
    upgrades: int = 0

    @property
    def stall_rate(self) -> float:
        return sum(1 for s in self.stalls if s > 0) / max(1, self.transitions)

    @property
    def p99_stall_s(self) -> float:
        stalls = sorted(self.stalls)
        return stalls[int(0.99 * (len(stalls) - 1))] if stalls else 0.0

    @property
    def utilisation(self) -> float:
        return self.gpu_busy_s / max(1e-9, self.gpus * self.span_s)

    @property
    def unwatched_share(self) -> float:
        return self.renders_unwatched / max(1, self.renders)

    @property
    def degraded_share(self) -> float:
        return self.degraded / max(1, self.transitions)

    @property
    def feasible(self) -> bool:
        return self.stall_rate <= MAX_STALL_RATE and self.degraded_share <= MAX_DEGRADED

    def summary(self) -> dict[str, float | int | str]:
        return {
            "policy": self.policy,
            "gpus": self.gpus,
            "viewers": self.viewers,
            "transitions": self.transitions,
            "stall_rate": round(self.stall_rate, 5),
            "p99_stall_s": round(self.p99_stall_s, 3),
            "gpu_utilisation": round(self.utilisation, 4),
            "renders": self.renders,
            "unwatched_share": round(self.unwatched_share, 4),
            "degraded_share": round(self.degraded_share, 4),
            "cancels": self.cancels,
            "upgrades": self.upgrades,
            "rendered_twice": self.rendered_twice,
            "watched_unrendered": self.watched_unrendered,
        }


def jitter(key: str) -> float:
    """A seeded +-15% variation of a render's time, the same for a key in every policy."""
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return 0.85 + 0.3 * int.from_bytes(digest, "big") / 0xFFFFFFFF


class Simulation:
    """Viewers play, choose and stall; GPUs take jobs from the policy; a heap of events orders time."""

    def __init__(self, world: World, policy_name: str, model: Model, gpus: int) -> None:
        self.world = world
        self.model = model
        self.gpus = gpus
        self.clock = Clock()
        self.policy = make_policy(policy_name, self.clock, world, model, gpus)
        self.depth = Tuning().render_depth if policy_name == "reelfork" else 1
        self.cost = {p.name: p.rtf for p in model.profiles()}
        self.full = model.profiles()[0].name
        self.outcome = Outcome(policy_name, gpus, len(world.viewers))
        self.events: list[tuple[float, int, str, str]] = []
        self.sequence = 0
        self.rendered: dict[str, str] = {}
        self.taken: set[str] = set()
        self.clip_keys: dict[str, list[str]] = {}
        self.clip_cache: dict[str, tuple[Clip, ...]] = {}
        self.tree_cache: dict[tuple[str, int], tuple[Child, ...]] = {}
        """What ``tell`` hands the policy, kept until the next render changes it."""
        self.running: dict[str, Job] = {}
        self.watched: set[str] = set()
        self.waiting: dict[str, list[tuple[str, float]]] = {}
        self.idle = [f"gpu{i}" for i in range(gpus)]
        self.step: dict[str, int] = {}
        self.clip: dict[str, int] = {}
        self.viewers = {viewer.name: viewer for viewer in world.viewers}
        for root in world.roots:
            for index in range(len(world.scenes[root].clips)):
                self.rendered[job_key("render", root, index)] = self.full

    def at(self, time: float, event: str, subject: str) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (time, self.sequence, event, subject))

    def run(self) -> Outcome:
        for viewer in self.world.viewers:
            self.at(viewer.arrival, "arrive", viewer.name)
        first = self.world.viewers[0].arrival if self.world.viewers else 0.0
        while self.events:
            time, _, event, subject = heapq.heappop(self.events)
            self.clock.time = time
            getattr(self, f"on_{event}")(subject)
            self.outcome.cancels += sum(1 for d in self.policy.decisions() if isinstance(d, Cancel))
            self.dispatch()
        self.outcome.span_s = self.clock.time - first
        self.outcome.renders_unwatched = sum(
            1 for key in self.rendered if key not in self.watched and not self.is_root(key)
        )
        return self.outcome

    def is_root(self, key: str) -> bool:
        return key.split("#")[0].endswith("/0.0")

    # viewers

    def scene_of(self, viewer: str) -> Scene:
        return self.world.scenes[self.viewers[viewer].path[self.step[viewer]]]

    def clips(self, scene: Scene) -> tuple[Clip, ...]:
        clips = self.clip_cache.get(scene.node)
        if clips is None:
            rendered = self.rendered
            clips = self.clip_cache[scene.node] = tuple(
                Clip(d, key in rendered, rendered.get(key, ""))
                for d, key in zip(scene.clips, self.keys(scene), strict=True)
            )
        return clips

    def keys(self, scene: Scene) -> list[str]:
        keys = self.clip_keys.get(scene.node)
        if keys is None:
            keys = self.clip_keys[scene.node] = [job_key("render", scene.node, i) for i in range(len(scene.clips))]
        return keys

    def children(self, scene: Scene, depth: int) -> tuple[Child, ...]:
        """A scene's choices as the server knows them, with their own down to ``depth`` levels."""
        children = self.tree_cache.get((scene.node, depth))
        if children is None:
            children = self.tree_cache[(scene.node, depth)] = tuple(
                Child(str(i), node, self.clips(self.world.scenes[node]), True, self.children_of(node, depth - 1))
                for i, node in enumerate(scene.children)
            )
        return children

    def children_of(self, node: str, depth: int) -> tuple[Child, ...]:
        return self.children(self.world.scenes[node], depth) if depth > 0 else ()

    def tell(self, viewer: str, position_s: float) -> None:
        scene = self.scene_of(viewer)
        children = self.children(scene, self.depth)
        self.policy.viewer_at(viewer, scene.node, position_s, self.clips(scene), children)

    def on_arrive(self, viewer: str) -> None:
        self.step[viewer] = 0
        self.clip[viewer] = 0
        self.play(viewer)

    def play(self, viewer: str) -> None:
        scene = self.scene_of(viewer)
        index = self.clip[viewer]
        key = job_key("render", scene.node, index)
        self.watched.add(key)
        if key not in self.rendered:
            self.outcome.watched_unrendered += 1
        elif self.rendered[key] != self.full:
            self.outcome.degraded += 1
        self.tell(viewer, sum(scene.clips[:index]))
        self.at(self.clock.time + scene.clips[index], "clip_end", viewer)

    def need(self, viewer: str) -> None:
        """The viewer is ready for their next clip: play it, or stall until it is rendered."""
        scene = self.scene_of(viewer)
        key = job_key("render", scene.node, self.clip[viewer])
        self.outcome.transitions += 1
        if key in self.rendered:
            self.outcome.stalls.append(0.0)
            self.play(viewer)
            return
        self.waiting.setdefault(key, []).append((viewer, self.clock.time))
        self.tell(viewer, sum(scene.clips[: self.clip[viewer]]))

    def on_clip_end(self, viewer: str) -> None:
        scene = self.scene_of(viewer)
        if self.clip[viewer] + 1 < len(scene.clips):
            self.clip[viewer] += 1
            self.need(viewer)
        elif scene.children:
            self.tell(viewer, sum(scene.clips))
            self.at(self.clock.time + self.viewers[viewer].decisions_s[self.step[viewer]], "choose", viewer)
        else:
            self.policy.viewer_left(viewer)

    def on_choose(self, viewer: str) -> None:
        plan = self.viewers[viewer]
        step = self.step[viewer]
        self.policy.viewer_chose(viewer, plan.path[step], str(plan.choices[step]))
        self.step[viewer] = step + 1
        self.clip[viewer] = 0
        self.need(viewer)

    # GPUs

    def dispatch(self) -> None:
        while self.idle:
            job = self.policy.next_job(self.idle[-1])
            if job is None:
                return
            worker = self.idle.pop()
            if job.key in self.taken:
                self.outcome.rendered_twice += 1
            self.taken.add(job.key)
            self.running[worker] = job
            seconds = self.cost[job.profile] * job.duration_s * jitter(job.key)
            self.outcome.gpu_busy_s += seconds
            self.at(self.clock.time + seconds, "done", worker)

    def on_done(self, worker: str) -> None:
        job = self.running.pop(worker)
        self.idle.append(worker)
        key = job_key("render", job.node, job.clip)
        if key in self.rendered:
            self.outcome.upgrades += 1
        else:
            self.outcome.renders += 1
        self.rendered[key] = job.profile
        self.clip_cache.pop(job.node, None)
        self.tree_cache.clear()
        self.policy.job_done(job.key, self.cost[job.profile] * job.duration_s * jitter(job.key))
        for viewer, since in self.waiting.pop(key, []):
            self.outcome.stalls.append(self.clock.time - since)
            self.play(viewer)


def simulate(world: World, policy: str, model: Model, gpus: int) -> Outcome:
    return Simulation(world, policy, model, gpus).run()


def runner(world: World, policy: str, model: Model) -> Callable[[int], Outcome]:
    return lambda gpus: simulate(world, policy, model, gpus)


def fewest_gpus(run: Callable[[int], Outcome]) -> tuple[int | None, Outcome]:
    """The fewest GPUs whose run is feasible (doubling, then bisection), and that run; None if even
    ``MAX_GPUS`` is not enough (on-demand: every first visit to a scene waits for its render)."""
    low, high = 0, 1
    best = run(high)
    while not best.feasible:
        if high >= MAX_GPUS:
            return None, best
        low, high = high, high * 2
        best = run(high)
    while high - low > 1:
        middle = (low + high) // 2
        outcome = run(middle)
        if outcome.feasible:
            high, best = middle, outcome
        else:
            low = middle
    return high, best


# -- the report ------------------------------------------------------------------------------


def row(outcome: Outcome, per_gpu: float | None) -> str:
    capacity = f"{per_gpu:9.1f}" if per_gpu is not None else "    never"
    return (
        f"{outcome.policy:<13}{outcome.stall_rate:>8.2%}{outcome.p99_stall_s:>9.2f}{outcome.utilisation:>8.1%}"
        f"{outcome.unwatched_share:>11.1%}{outcome.degraded_share:>10.1%}{capacity}"
    )


HEADER = f"{'policy':<13}{'stalls':>8}{'p99 s':>9}{'GPU':>8}{'unwatched':>11}{'degraded':>10}{'viewers/GPU':>12}"


def speculation_floor(world: World, model: Model) -> float:
    """Clip-seconds that a policy without foresight renders to show every clip in full and on time,
    over the oracle's (the watched clips). A viewer's choice is known only when made; a clip of the
    chosen child that a full render started then would not finish before it is due (the first clip
    always, a later one when ``rtf * duration`` exceeds its offset in the scene) must already be
    rendered for every child, chosen or not. A policy may still do better by degrading a few."""
    roots = set(world.roots)
    watched: set[tuple[str, int]] = set()
    speculated: set[tuple[str, int]] = set()
    for viewer in world.viewers:
        for node in viewer.path:
            if node not in roots:
                watched.update((node, index) for index in range(len(world.scenes[node].clips)))
            for child in world.scenes[node].children:
                offset = 0.0
                for index, duration in enumerate(world.scenes[child].clips):
                    if offset < model.rtf * duration:
                        speculated.add((child, index))
                    offset += duration

    def seconds(clips: set[tuple[str, int]]) -> float:
        return sum(world.scenes[node].clips[index] for node, index in clips)

    return seconds(watched | speculated) / max(1e-9, seconds(watched))


def compare(scenario: Scenario, model: Model, log: Callable[[str], None]) -> dict[str, object]:
    """Every policy's fewest GPUs for this audience, and all of them at reelfork's count."""
    world = make_world(scenario)
    floor = speculation_floor(world, model)
    searches: dict[str, tuple[int | None, Outcome]] = {}
    for policy in POLICIES:
        searches[policy] = fewest_gpus(runner(world, policy, model))
        log(f"  {policy}: fewest GPUs at <= 1% stall: {searches[policy][0]}")
    gpus = searches["reelfork"][0] or MAX_GPUS
    at_gpus = {policy: simulate(world, policy, model, gpus) for policy in POLICIES}
    per_gpu = {p: (scenario.viewers / g if g else None) for p, (g, _) in searches.items()}
    log(
        f"\n{model.name}: {scenario.viewers} viewers over {scenario.window_s:.0f} s, {scenario.stories} stories;"
        f" at {gpus} GPUs (reelfork's fewest):"
    )
    log(HEADER)
    for policy in POLICIES:
        log(row(at_gpus[policy], per_gpu[policy]))
    oracle, reelfork = per_gpu["oracle"], per_gpu["reelfork"]
    share = reelfork / oracle if oracle and reelfork else 0.0
    log(f"reelfork reaches {share:.0%} of the oracle's viewers per GPU (target >= 90%)")
    log(f"without foresight, every clip in full and on time takes >= {floor:.2f}x the oracle's render work")
    return {
        "scenario": asdict(scenario),
        "model": asdict(model),
        "gpus": gpus,
        "at_reelfork_gpus": {p: o.summary() for p, o in at_gpus.items()},
        "fewest_gpus": {p: g for p, (g, _) in searches.items()},
        "viewers_per_gpu": per_gpu,
        "fewest_gpus_runs": {p: o.summary() for p, (_, o) in searches.items()},
        "reelfork_share_of_oracle": round(share, 4),
        "speculation_floor": round(floor, 4),
    }


def sharing(audience: Scenario, alone: Scenario, model: Model, log: Callable[[str], None]) -> dict[str, object]:
    """Viewers per GPU for a big audience on one story over viewers per GPU for viewers alone."""
    crowd_world, alone_world = make_world(audience), make_world(alone)
    crowd_gpus, crowd = fewest_gpus(runner(crowd_world, "reelfork", model))
    alone_gpus, solo = fewest_gpus(runner(alone_world, "reelfork", model))
    crowd_per_gpu = audience.viewers / crowd_gpus if crowd_gpus else 0.0
    alone_per_gpu = alone.viewers / alone_gpus if alone_gpus else 0.0
    factor = crowd_per_gpu / alone_per_gpu if alone_per_gpu else 0.0
    log(f"\nsharing ({model.name}, reelfork, arrivals over {audience.window_s:.0f} s):")
    log(
        f"  {audience.viewers} viewers on one story: {crowd_gpus} GPUs, {crowd_per_gpu:.1f} viewers/GPU"
        f" (stalls {crowd.stall_rate:.2%}, degraded {crowd.degraded_share:.1%})"
    )
    log(
        f"  {alone.viewers} viewers each alone:    {alone_gpus} GPUs, {alone_per_gpu:.1f} viewers/GPU"
        f" (stalls {solo.stall_rate:.2%}, degraded {solo.degraded_share:.1%})"
    )
    log(f"  sharing factor {factor:.1f}x (target >= 10x)")
    return {
        "audience": asdict(audience),
        "alone": asdict(alone),
        "audience_gpus": crowd_gpus,
        "alone_gpus": alone_gpus,
        "audience_viewers_per_gpu": round(crowd_per_gpu, 2),
        "alone_viewers_per_gpu": round(alone_per_gpu, 2),
        "sharing_factor": round(factor, 2),
        "audience_run": crowd.summary(),
        "alone_run": solo.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller audiences, under a minute")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    base = Scenario(seed=args.seed)
    if args.quick:
        base = replace(base, viewers=200, stories=4, window_s=200.0)
    audience = replace(base, viewers=2000 if args.quick else 10_000, stories=1, window_s=1800.0)
    alone = replace(audience, viewers=60 if args.quick else 200, stories=0)
    results: dict[str, object] = {"quick": args.quick, "max_stall_rate": MAX_STALL_RATE, "max_degraded": MAX_DEGRADED}
    results["compare"] = {m.name: compare(base, m, print) for m in (LTX, WAN)}
    results["sharing"] = sharing(audience, alone, LTX, print)
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{results['seconds']} s; figures in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
