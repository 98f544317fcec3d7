"""The simulated world: seeded stories, the viewers who watch them, and the render models.

Assumptions (all seeded, all overridable in ``Scenario``):

* Stories are layered graphs, depth 8-12 scenes, 2-4 choices per scene. Branches fold back the
  way authored branching stories do (branch and bottleneck): a layer holds at most ``width``
  scenes, later choices lead into existing ones. A scene is 1-3 clips of 5-10 s.
* Audiences choose by Zipf (exponent 1.0) over a scene's choices, in a random order per scene:
  with three choices 55% / 27% / 18%. Stories' popularity in a catalogue is Zipf (exponent 1.0) too.
* Choice windows as the play server offers them: a scene's choices are offered from ``opens_at =
  max(0, length - choice_window_s)`` to ``closes_at = length + after_end_s`` on its timeline (the
  story format's default: the last 10 s, closing as it ends; ``choice_window_s=0, after_end_s=10``
  is choosing after the end, as before the windows). A viewer chooses 1-5 s after the choices
  appear and the chosen scene starts at once (the rest of the scene is skipped); 5% do not choose
  and get the default (the first choice) when the window closes.
* The paywall (``paywall=True``): the story's first ``episode_layers`` layers are episode 1, free;
  the rest is locked. A viewer whose path leads past episode 1 unlocks with ``unlock_rate``
  probability (seeded by their name, so the paths are those of the world without a paywall), after
  ``unlock_s`` seconds at the paywall (buying); the others leave there.
* Arrivals are uniform over a window. Each story's first scene is rendered when it is published.
* Render cost: real-time factor (render seconds per clip second, one GPU) 0.4 for an LTX-class
  model on an H100 (LTX-Video renders 5 s of 768x512 in about 2 s), and 1.5 for a slower
  Wan-class distilled model (our assumption: between 1 and 2). The scheduler degrades to ``fast``
  (fewer steps, lower resolution: 0.35x the cost) and ``animatic`` (0.05x) when ``full`` would
  miss a deadline. Each render's time varies +-15% around that, seeded by its key.
* Streaming (``Streaming``): a clip is rendered as a stream of ``segment_s`` segments, each conditioned on
  the one before (segment ``k`` starts once ``k - 1`` is stored) and re-reading ``overlap_s`` seconds of
  conditioning frames (LTX-Video continues a clip from its last latent frames: 9-17 frames, 0.4-0.7 s at
  24 fps), rendered at the model's real-time factor on top of the segment's own length. Playback starts
  when the first segment exists and stalls where the next one is missing. ``segment_s = 0``: whole clips,
  played once complete, with no overlap (the clip-granular world of the earlier simulation).
* Story text is already written (authored or written ahead by the LLM, whose capacity is separate
  from the GPUs'); writing two levels ahead is covered by the unit tests, not by this simulation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from reelfork.server.lookahead.scheduler import Profile, Window
from reelfork.server.lookahead.segments import segment_lengths

FAST_COST = 0.35
ANIMATIC_COST = 0.05


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
    """Seconds after the choices appear that a viewer chooses."""
    default_share: float = 0.05
    """Viewers who let the default be taken when the window closes."""
    choice_window_s: float = 10.0
    """``choice_window.seconds``: the choices are offered this long before a scene ends (0: once it ends)."""
    after_end_s: float = 0.0
    """``choice_window.after_end``: the window stays open this long after the scene ends, its last frame held."""
    paywall: bool = False
    """Whether episodes after the first are locked (see ``unlock_rate``)."""
    episode_layers: int = 4
    """Layers of scenes per episode (4 scenes of 5-30 s: about a minute)."""
    unlock_rate: float = 0.2
    """Share of the viewers reaching the paywall who unlock it (an assumption)."""
    unlock_s: tuple[float, float] = (5.0, 20.0)
    """Seconds an unlocking viewer spends at the paywall."""
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


@dataclass(frozen=True)
class Streaming:
    segment_s: float = 4.0
    """Segment length; 0: whole clips. 4 s, from the simulation (quick run, seed 7, LTX-class, 10 s windows,
    reelfork at 16 GPUs: 1 s segments stall 8.6% of clips, 2 s 3.3%, 4 s 1.7% (feasible at 18-19 GPUs),
    6 s 1.5% at 14 GPUs but with 24% of clips degraded): each segment re-reads ``overlap_s`` of
    conditioning frames (50% more work at 1 s, 12.5% at 4 s), while an unchosen child's lead is one segment
    for a model faster than real time, so longer segments speculate more (``bench/simulate.py --sweep``)."""
    overlap_s: float = 0.5
    """Seconds of conditioning frames each segment re-reads (its fixed cost, at the model's real-time factor)."""

    def lengths(self, duration_s: float) -> tuple[float, ...]:
        return segment_lengths(duration_s, self.segment_s)

    def work_s(self, length_s: float) -> float:
        """Seconds of video a segment's render goes through."""
        return length_s + self.overlap_s if self.segment_s > 0 else length_s


CLIPS = Streaming(0.0, 0.0)
"""Whole clips: the earlier simulation's world, where the clip-granular oracle runs."""


LTX = Model("ltx-class (rtf 0.4)", 0.4)
WAN = Model("wan-class (rtf 1.5)", 1.5)


@dataclass(frozen=True)
class Scene:
    node: str
    clips: tuple[float, ...]
    children: tuple[str, ...]
    weights: tuple[float, ...]
    level: int = 0
    """Its layer in the story, from 0: its episode is ``level // episode_layers + 1``."""


@dataclass(frozen=True)
class Viewer:
    name: str
    arrival: float
    path: tuple[str, ...]
    """Scenes in the order this viewer watches them, the story's first scene first."""
    choices: tuple[int, ...]
    decisions_s: tuple[float, ...]
    """Seconds after each scene's choices appear that the viewer chooses; ``inf``: the default is taken."""
    paywall: int = -1
    """The step on the path where the viewer enters a locked episode (-1: never). One who does not
    unlock has chosen into it, but their path ends before it."""
    unlocks: bool = True
    unlock_s: float = 0.0


@dataclass(frozen=True)
class World:
    scenes: dict[str, Scene]
    roots: tuple[str, ...]
    viewers: tuple[Viewer, ...]
    choice_window_s: float = 0.0
    after_end_s: float = 10.0
    paywall_level: int = 0
    """Scenes at this layer and below are locked; 0: no paywall."""


def window(world: World, scene: Scene) -> Window:
    """A scene's choice window on its timeline, as the play server computes it."""
    length = sum(scene.clips)
    opens = max(0.0, length - world.choice_window_s)
    closes = length + world.after_end_s
    return Window(opens, closes if closes > opens else opens + 0.1)


def choice_at(world: World, scene: Scene, delay_s: float) -> float:
    """Seconds into ``scene`` that a viewer who takes ``delay_s`` once the choices appear moves on."""
    offered = window(world, scene)
    return offered.opens_at + min(delay_s, offered.closes_at - offered.opens_at)


def watched(world: World, scene: Scene, delay_s: float | None) -> int:
    """How many of ``scene``'s clips a viewer watches before moving on (``None``: no choice, all)."""
    if delay_s is None:
        return len(scene.clips)
    leaves, offset, count = choice_at(world, scene, delay_s), 0.0, 0
    for duration in scene.clips:
        if count and offset >= leaves:
            break
        count += 1
        offset += duration
    return count


def watched_segments(world: World, scene: Scene, delay_s: float | None, streaming: Streaming) -> list[tuple[int, int]]:
    """The (clip, segment) pairs of ``scene`` a viewer plays before moving on (``None``: no choice, all): those
    that start before the choice (at least the first)."""
    leaves = math.inf if delay_s is None else choice_at(world, scene, delay_s)
    out: list[tuple[int, int]] = []
    offset = 0.0
    for index, duration in enumerate(scene.clips):
        for segment, length in enumerate(streaming.lengths(duration)):
            if out and offset >= leaves:
                return out
            out.append((index, segment))
            offset += length
    return out


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
            level = layers.index(layer)
            scenes[node] = Scene(node, clips, choices, zipf_weights(rng, len(choices), scenario.zipf), level)
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
    paywall = scenario.episode_layers if scenario.paywall else 0
    return World(scenes, tuple(roots), tuple(viewers), scenario.choice_window_s, scenario.after_end_s, paywall)


def walk(rng: random.Random, name: str, arrival: float, root: str, scenes: dict[str, Scene], s: Scenario) -> Viewer:
    path, choices, decisions = [root], [], []
    while scenes[path[-1]].children:
        scene = scenes[path[-1]]
        choice = rng.choices(range(len(scene.children)), weights=scene.weights)[0]
        if rng.random() < s.default_share:
            choice = 0
            decisions.append(math.inf)
        else:
            decisions.append(round(rng.uniform(*s.decision_s), 2))
        path.append(scene.children[choice])
        choices.append(choice)
    wall = next((step for step, node in enumerate(path) if s.paywall and scenes[node].level >= s.episode_layers), -1)
    if wall < 0:
        return Viewer(name, arrival, tuple(path), tuple(choices), tuple(decisions))
    buyer = random.Random(f"{s.seed}:unlock:{name}")
    unlocks, unlock_s = buyer.random() < s.unlock_rate, round(buyer.uniform(*s.unlock_s), 2)
    end = len(path) if unlocks else wall
    return Viewer(
        name, arrival, tuple(path[:end]), tuple(choices[:end]), tuple(decisions[:end]), wall, unlocks, unlock_s
    )
