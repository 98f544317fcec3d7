"""The discrete-event loop: viewers play, choose and stall while GPUs render what a policy asks for,
and the ``Outcome`` of a run (stalls, GPU use, unwatched and degraded renders).

Clips stream in segments (``Streaming``): a viewer plays segment after segment and stalls where the
next is missing; a GPU renders one segment at a time, and a segment whose predecessor is not stored
waits (parked, the GPU free) until it is. Stalls and degraded clips are counted per clip, as in the
clip-granular world: a clip stalled if playback waited at its start or in its middle; its degraded
share is the share of its segments' seconds played in a cheaper profile.

A viewer is offered a scene's choices when playback reaches its window's ``opens_at``, chooses
``decisions_s`` later (real time: thinking goes on while a clip stalls) and starts the chosen scene
at once; one who does not choose gets the default when the window closes (``after_end_s`` past the
end of the last clip). A choice into a locked episode without an entitlement is the paywall: the
viewer unlocks after ``unlock_s`` and goes on, or leaves.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from dataclasses import dataclass, field

from reelfork.server.lookahead.scheduler import Cancel, Child, Clip, Job, Tuning, Window, job_key

from bench.simulation.policies import CLIP_POLICIES, Clock, make_policy
from bench.simulation.world import CLIPS, Model, Scene, Streaming, World, window

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
    degraded: float = 0.0
    """Clips watched in a degraded profile (a clip partly degraded counts for that part)."""
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
    paywall_reached: int = 0
    paywall_unlocked: int = 0
    watched_s: float = 0.0
    """Seconds of video the viewers played."""
    segment_s: float = 0.0
    rendered_s: dict[tuple[str, int, int], float] = field(default_factory=dict)
    """GPU seconds of each unit's first render (scene, clip, segment: 0 in whole clips), upgrades apart."""

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
            "paywall_reached": self.paywall_reached,
            "paywall_unlocked": self.paywall_unlocked,
            "watched_s": round(self.watched_s, 1),
            "segment_s": self.segment_s,
        }


def jitter(key: str) -> float:
    """A seeded +-15% variation of a render's time, the same for a key in every policy."""
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return 0.85 + 0.3 * int.from_bytes(digest, "big") / 0xFFFFFFFF


class Simulation:
    """Viewers play, choose and stall; GPUs take jobs from the policy; a heap of events orders time."""

    def __init__(self, world: World, policy_name: str, model: Model, gpus: int, streaming: Streaming) -> None:
        self.world = world
        self.model = model
        self.gpus = gpus
        self.streaming = streaming
        self.segmented = streaming.segment_s > 0
        self.clock = Clock()
        self.policy = make_policy(policy_name, self.clock, world, model, gpus, streaming)
        self.depth = Tuning().render_depth if policy_name.startswith("reelfork") else 1
        self.cost = {p.name: p.rtf for p in model.profiles()}
        self.full = model.profiles()[0].name
        self.outcome = Outcome(policy_name, gpus, len(world.viewers), segment_s=streaming.segment_s)
        self.events: list[tuple[float, int, str, str]] = []
        self.sequence = 0
        self.rendered: dict[str, str] = {}
        """Segment (or clip) key → the profile it is stored in."""
        self.taken: set[str] = set()
        self.unit_keys: dict[str, list[list[str]]] = {}
        self.lengths: dict[str, list[tuple[float, ...]]] = {}
        self.clip_cache: dict[str, tuple[Clip, ...]] = {}
        self.tree_cache: dict[tuple[str, int, bool], tuple[Child, ...]] = {}
        self.windows: dict[str, Window] = {}
        """What ``tell`` hands the policy, kept until the next render changes it."""
        self.running: dict[str, Job] = {}
        self.parked: dict[str, list[Job]] = {}
        """A segment's key → jobs handed out for the segment after it, waiting for it to be stored."""
        self.unparked: list[Job] = []
        self.last_played: dict[str, float] = {}
        """When each unit watched was last played."""
        self.work: list[tuple[Job, float, float]] = []
        """Each render: its job, when it started, its GPU seconds."""
        self.waiting: dict[str, list[tuple[str, float]]] = {}
        self.idle = [f"gpu{i}" for i in range(gpus)]
        self.wakes: set[float] = set()
        """When a wake event is due (the policy held work until then)."""
        self.step: dict[str, int] = {}
        self.clip: dict[str, int] = {}
        self.segment: dict[str, int] = {}
        self.waits: list[float] = []
        """Seconds each clip transition waited, at its start or in its middle."""
        self.started_at: dict[str, tuple[float, float]] = {}
        """When each viewer's current segment started playing, and its length: what they watched of it."""
        self.transition: dict[str, int] = {}
        """Each viewer's current clip's index in ``waits``."""
        self.offered: set[str] = set()
        """Viewers shown their scene's choices."""
        self.stalled: dict[str, tuple[str, float]] = {}
        """Viewers waiting for a segment: its key, since when."""
        self.entitled: set[str] = set()
        """Viewers who unlocked the story's locked episodes."""
        self.paused: set[str] = set()
        """Viewers at the paywall, buying."""
        self.gone: set[str] = set()
        self.viewers = {viewer.name: viewer for viewer in world.viewers}
        for root in world.roots:
            for keys in self.keys(world.scenes[root]):
                self.rendered.update(dict.fromkeys(keys, self.full))

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
            self.wake()
        self.outcome.span_s = self.clock.time - first
        self.outcome.stalls = self.waits
        for job, started, seconds in self.work:
            key = self.unit_key(job)
            upgrade = job.key != key
            watched = self.last_played.get(key, -math.inf) >= started
            self.outcome.gpu_busy_s += seconds
            if upgrade:
                self.outcome.upgrade_busy_s += seconds
                if not watched:
                    self.outcome.unwatched_upgrade_busy_s += seconds
                continue
            unit = (job.node, job.clip, (job.segment or 0) if self.segmented else 0)
            self.outcome.rendered_s[unit] = self.outcome.rendered_s.get(unit, 0.0) + seconds
            if not watched:
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
            made = []
            for duration, keys in zip(scene.clips, self.keys(scene), strict=True):
                stored: list[str] = []
                for key in keys:
                    if key not in rendered:
                        break
                    stored.append(rendered[key])
                done = len(stored) == len(keys)
                profile = stored[-1] if done else ""
                made.append(Clip(duration, done, profile, tuple(stored) if self.segmented else ()))
            clips = self.clip_cache[scene.node] = tuple(made)
        return clips

    def keys(self, scene: Scene) -> list[list[str]]:
        """Each clip's units' keys: its segments', or the clip's own."""
        keys = self.unit_keys.get(scene.node)
        if keys is None:
            lengths = self.lengths[scene.node] = [self.streaming.lengths(d) for d in scene.clips]
            keys = self.unit_keys[scene.node] = [
                [job_key("render", scene.node, i, segment=k if self.segmented else None) for k in range(len(clip))]
                for i, clip in enumerate(lengths)
            ]
        return keys

    def window(self, scene: Scene) -> Window:
        found = self.windows.get(scene.node)
        if found is None:
            found = self.windows[scene.node] = window(self.world, scene)
        return found

    def children(self, scene: Scene, depth: int, locked: bool) -> tuple[Child, ...]:
        """A scene's choices as the server knows them, with their own down to ``depth`` levels; behind
        the paywall when ``locked`` (the viewer has no entitlement) and in a locked episode."""
        children = self.tree_cache.get((scene.node, depth, locked))
        if children is None:
            wall = self.world.paywall_level if locked else 0
            made = []
            for i, node in enumerate(scene.children):
                child = self.world.scenes[node]
                paywall = node.split("/")[0] if wall and child.level >= wall else ""
                below = self.children(child, depth - 1, locked) if depth > 1 and not paywall else ()
                made.append(Child(str(i), node, self.clips(child), True, below, self.window(child), paywall))
            children = self.tree_cache[(scene.node, depth, locked)] = tuple(made)
        return children

    def position(self, viewer: str) -> float:
        """Seconds into the viewer's scene where their current segment starts."""
        scene = self.scene_of(viewer)
        index = self.clip[viewer]
        lengths = self.lengths[scene.node][index]
        return sum(scene.clips[:index]) + sum(lengths[: self.segment[viewer]])

    def tell(self, viewer: str, position_s: float) -> None:
        scene = self.scene_of(viewer)
        locked = bool(self.world.paywall_level) and viewer not in self.entitled
        children = self.children(scene, self.depth, locked)
        self.policy.viewer_at(viewer, scene.node, position_s, self.clips(scene), children, self.window(scene))

    def on_arrive(self, viewer: str) -> None:
        self.step[viewer] = 0
        self.clip[viewer] = 0
        self.segment[viewer] = 0
        self.waits.append(0.0)
        self.outcome.transitions += 1
        self.transition[viewer] = len(self.waits) - 1
        self.play(viewer, tell=True)

    def play(self, viewer: str, tell: bool) -> None:
        scene = self.scene_of(viewer)
        index, segment = self.clip[viewer], self.segment[viewer]
        self.keys(scene)
        key = self.unit_keys[scene.node][index][segment]
        length = self.lengths[scene.node][index][segment]
        self.last_played[key] = self.clock.time
        self.started_at[viewer] = (self.clock.time, length)
        if key not in self.rendered:
            self.outcome.watched_unrendered += 1
        elif self.rendered[key] != self.full:
            self.outcome.degraded += length / scene.clips[index]
        offset = self.position(viewer)
        if tell:
            self.tell(viewer, offset)
        self.at(self.clock.time + length, "segment_end", f"{viewer}@{self.step[viewer]}.{index}.{segment}")
        opens = self.window(scene).opens_at
        if scene.children and viewer not in self.offered and opens < offset + length:
            self.offer(viewer, self.clock.time + max(0.0, opens - offset))

    def watched(self, viewer: str) -> None:
        """Count what the viewer watched of the segment playing (all of it, or up to a choice made in it)."""
        started = self.started_at.pop(viewer, None)
        if started is not None:
            self.outcome.watched_s += min(self.clock.time - started[0], started[1])

    def offer(self, viewer: str, at: float) -> None:
        """The viewer sees the choices at ``at`` and chooses when they have decided (unless they leave it
        to the default)."""
        self.offered.add(viewer)
        step = self.step[viewer]
        delay = self.viewers[viewer].decisions_s[step]
        if math.isfinite(delay):
            self.at(at + delay, "choose", f"{viewer}@{step}")

    def need(self, viewer: str) -> None:
        """The viewer is ready for their next segment: play it, or stall until it is rendered. A new clip
        (segment 0) is a transition."""
        scene = self.scene_of(viewer)
        self.keys(scene)
        key = self.unit_keys[scene.node][self.clip[viewer]][self.segment[viewer]]
        starts = self.segment[viewer] == 0
        if starts:
            self.outcome.transitions += 1
            self.waits.append(0.0)
            self.transition[viewer] = len(self.waits) - 1
        if key in self.rendered:
            self.play(viewer, tell=starts)
            return
        self.waiting.setdefault(key, []).append((viewer, self.clock.time))
        self.stalled[viewer] = (key, self.clock.time)
        self.tell(viewer, self.position(viewer))

    def current(self, subject: str) -> tuple[str, int] | None:
        """The viewer and step an event was for, if the viewer is still there and at that point."""
        viewer, _, at = subject.partition("@")
        step, *unit = at.split(".")
        if viewer in self.gone or viewer in self.paused or self.step.get(viewer) != int(step):
            return None
        if unit and (self.clip[viewer], self.segment[viewer]) != (int(unit[0]), int(unit[1])):
            return None
        return viewer, int(step)

    def on_segment_end(self, subject: str) -> None:
        current = self.current(subject)
        if current is None:
            return  # the viewer chose and moved on meanwhile
        viewer, step = current
        self.watched(viewer)
        scene = self.scene_of(viewer)
        if self.segment[viewer] + 1 < len(self.lengths[scene.node][self.clip[viewer]]):
            self.segment[viewer] += 1
            self.need(viewer)
        elif self.clip[viewer] + 1 < len(scene.clips):
            self.clip[viewer] += 1
            self.segment[viewer] = 0
            self.need(viewer)
        elif scene.children:
            length = sum(scene.clips)
            self.tell(viewer, length)
            if viewer not in self.offered:
                self.offer(viewer, self.clock.time)
            self.at(self.clock.time + self.window(scene).closes_at - length, "choose", f"{viewer}@{step}")
        else:
            self.leave(viewer)

    def on_choose(self, subject: str) -> None:
        """The viewer chose, or their window closed (whichever came first): the next scene starts."""
        current = self.current(subject)
        if current is None:
            return
        viewer, step = current
        self.watched(viewer)
        plan = self.viewers[viewer]
        self.policy.viewer_chose(viewer, plan.path[step], str(plan.choices[step]))
        self.offered.discard(viewer)
        stalled = self.stalled.pop(viewer, None)
        if stalled is not None:  # chose while a segment of the scene was late: that wait ends here
            key, since = stalled
            self.waiting[key].remove((viewer, since))
            self.waits[self.transition[viewer]] += self.clock.time - since
        if step + 1 == plan.paywall and viewer not in self.entitled:
            self.outcome.paywall_reached += 1
            if not plan.unlocks:
                self.leave(viewer)
                return
            self.paused.add(viewer)
            self.at(self.clock.time + plan.unlock_s, "unlock", viewer)
            return
        self.next_scene(viewer)

    def on_unlock(self, viewer: str) -> None:
        self.outcome.paywall_unlocked += 1
        self.paused.discard(viewer)
        self.entitled.add(viewer)
        self.next_scene(viewer)

    def leave(self, viewer: str) -> None:
        self.gone.add(viewer)
        self.policy.viewer_left(viewer)

    def next_scene(self, viewer: str) -> None:
        self.step[viewer] += 1
        self.clip[viewer] = 0
        self.segment[viewer] = 0
        self.need(viewer)

    # GPUs

    def unit_key(self, job: Job) -> str:
        return job_key("render", job.node, job.clip, segment=job.segment if self.segmented else None)

    def before(self, job: Job) -> str | None:
        """The segment a job's segment is conditioned on, while it is not stored (an upgrade re-renders a
        stored segment, whose predecessor is stored)."""
        if not self.segmented or job.segment == 0 or job.key != self.unit_key(job):
            return None
        key = job_key("render", job.node, job.clip, segment=job.segment - 1)
        return None if key in self.rendered else key

    def dispatch(self) -> None:
        while self.idle:
            job = self.unparked.pop() if self.unparked else self.policy.next_job(self.idle[-1])
            if job is None:
                return
            before = self.before(job)
            if before is not None:
                self.parked.setdefault(before, []).append(job)
                continue
            worker = self.idle.pop()
            if job.key in self.taken:
                self.outcome.rendered_twice += 1
            self.taken.add(job.key)
            self.running[worker] = job
            seconds = self.seconds(job)
            self.work.append((job, self.clock.time, seconds))
            self.at(self.clock.time + seconds, "done", worker)

    def wake(self) -> None:
        """Ask the policy for work again when it says held work may start, while a GPU is idle."""
        wake = self.policy.wake_at() if self.idle else None
        if wake is not None and wake > self.clock.time and wake not in self.wakes:
            self.wakes.add(wake)
            self.at(wake, "wake", "")

    def on_wake(self, subject: str) -> None:
        self.wakes.discard(self.clock.time)

    def seconds(self, job: Job) -> float:
        return self.cost[job.profile] * self.streaming.work_s(job.duration_s) * jitter(job.key)

    def on_done(self, worker: str) -> None:
        job = self.running.pop(worker)
        self.idle.append(worker)
        key = self.unit_key(job)
        if key in self.rendered:
            self.outcome.upgrades += 1
        else:
            self.outcome.renders += 1
        self.rendered[key] = job.profile
        self.clip_cache.pop(job.node, None)
        self.tree_cache.clear()
        self.policy.job_done(job.key, self.seconds(job))
        self.unparked.extend(self.parked.pop(key, []))
        for viewer, since in self.waiting.pop(key, []):
            self.stalled.pop(viewer, None)
            self.waits[self.transition[viewer]] += self.clock.time - since
            self.play(viewer, tell=True)


def simulate(world: World, policy: str, model: Model, gpus: int, streaming: Streaming | None = None) -> Outcome:
    """One run; in whole clips (``CLIPS``) unless ``streaming`` says otherwise (never for the clip-granular oracle)."""
    if streaming is None or policy in CLIP_POLICIES:
        streaming = CLIPS
    return Simulation(world, policy, model, gpus, streaming).run()
