"""The discrete-event loop: viewers play, choose and stall while GPUs render what a policy asks for,
and the ``Outcome`` of a run (stalls, GPU use, unwatched and degraded renders)."""

from __future__ import annotations

import hashlib
import heapq
import math
from dataclasses import dataclass, field

from reelfork.server.lookahead.scheduler import Cancel, Child, Clip, Job, Tuning, job_key

from bench.simulation.policies import Clock, make_policy
from bench.simulation.world import Model, Scene, World

MAX_STALL_RATE = 0.01
MAX_DEGRADED = 0.05


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
    upgrade_busy_s: float = 0.0
    """GPU seconds spent re-rendering degraded clips in full."""
    unwatched_busy_s: float = 0.0
    """GPU seconds spent on first renders of clips that nobody watched."""
    unwatched_upgrade_busy_s: float = 0.0
    """GPU seconds spent on upgrades of clips that nobody watched after the upgrade started."""
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
            "gpu_busy_s": round(self.gpu_busy_s, 1),
            "upgrade_busy_s": round(self.upgrade_busy_s, 1),
            "unwatched_busy_s": round(self.unwatched_busy_s, 1),
            "unwatched_upgrade_busy_s": round(self.unwatched_upgrade_busy_s, 1),
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
        self.last_played: dict[str, float] = {}
        """When each clip watched was last played."""
        self.work: list[tuple[str, float, float, bool]] = []
        """Each render: its clip's key, when it started, its GPU seconds, whether it was an upgrade."""
        self.waiting: dict[str, list[tuple[str, float]]] = {}
        self.idle = [f"gpu{i}" for i in range(gpus)]
        self.step: dict[str, int] = {}
        self.clip: dict[str, int] = {}
        self.window = world.choice_window_s
        self.decided: set[str] = set()
        """Viewers who chose while their scene still plays (with a choice window)."""
        self.ended: set[str] = set()
        """Viewers whose scene ended before they chose."""
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
        for key, started, seconds, upgrade in self.work:
            watched = self.last_played.get(key, -math.inf) >= started
            self.outcome.gpu_busy_s += seconds
            if upgrade:
                self.outcome.upgrade_busy_s += seconds
                if not watched:
                    self.outcome.unwatched_upgrade_busy_s += seconds
            elif not watched:
                self.outcome.renders_unwatched += 1
                self.outcome.unwatched_busy_s += seconds
        return self.outcome

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
        self.last_played[key] = self.clock.time
        if key not in self.rendered:
            self.outcome.watched_unrendered += 1
        elif self.rendered[key] != self.full:
            self.outcome.degraded += 1
        self.tell(viewer, sum(scene.clips[:index]))
        self.at(self.clock.time + scene.clips[index], "clip_end", viewer)
        if self.window > 0 and scene.children and index == len(scene.clips) - 1:
            opens = self.clock.time + max(0.0, scene.clips[index] - self.window)
            self.at(opens + self.viewers[viewer].decisions_s[self.step[viewer]], "choose", viewer)

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
            if self.window <= 0:
                self.at(self.clock.time + self.viewers[viewer].decisions_s[self.step[viewer]], "choose", viewer)
            elif viewer in self.decided:
                self.decided.discard(viewer)
                self.next_scene(viewer)
            else:
                self.ended.add(viewer)
        else:
            self.policy.viewer_left(viewer)

    def on_choose(self, viewer: str) -> None:
        plan = self.viewers[viewer]
        step = self.step[viewer]
        self.policy.viewer_chose(viewer, plan.path[step], str(plan.choices[step]))
        if self.window <= 0 or viewer in self.ended:
            self.ended.discard(viewer)
            self.next_scene(viewer)
        else:
            self.decided.add(viewer)  # the scene plays on; the next one starts when it ends

    def next_scene(self, viewer: str) -> None:
        self.step[viewer] += 1
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
            clip_key = job_key("render", job.node, job.clip)
            self.work.append((clip_key, self.clock.time, seconds, job.key != clip_key))
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
