"""The story graph: scenes as nodes, choices as edges, and what must hold before anyone plays it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx

from narrative.story import NARRATOR, Choice, Line, Scene, Story

GENERATED_PREFIX = "g-"

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One located finding: ``where`` names the scene and field, like ``scenes[s04].choices[c2].target``."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def build_graph(story: Story) -> nx.MultiDiGraph:
    """Scenes are nodes; each choice with a target is an edge keyed by its choice id.

    Open choices (written by the LLM at play time) have no edge; the node carries them in ``open``.
    """
    graph = nx.MultiDiGraph()
    for scene in story.scenes:
        graph.add_node(
            scene.id,
            ending=scene.ending,
            open=[choice.id for choice in scene.choices if choice.open is not None],
        )
    for scene in story.scenes:
        for choice in scene.choices:
            if choice.target is not None:
                graph.add_edge(scene.id, choice.target, key=choice.id, label=choice.label)
    return graph


def validate(story: Story) -> list[Problem]:
    """Every structural problem of a story's graph, errors first. An empty list means publishable."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, scene in enumerate(story.scenes):
        if scene.id in seen:
            problems.append(Problem("error", f"scenes[{index}].id", f"scene id {scene.id!r} is used twice"))
        if scene.id.startswith(GENERATED_PREFIX):
            reserved = f"ids starting with {GENERATED_PREFIX!r} are reserved for written scenes"
            problems.append(Problem("error", f"scenes[{index}].id", reserved))
        seen.add(scene.id)
    if story.start not in seen:
        problems.append(Problem("error", "start", f"start scene {story.start!r} does not exist"))

    speakers = set(story.speakers()) | {NARRATOR}
    for scene in story.scenes:
        problems.extend(_scene_problems(scene, seen, speakers, story))

    if any(p.severity == "error" for p in problems):
        return _ordered(problems)

    graph = build_graph(story)
    reachable = nx.descendants(graph, story.start) | {story.start}
    for scene in story.scenes:
        if scene.id not in reachable:
            problems.append(Problem("warning", f"scenes[{scene.id}]", "unreachable from the start scene"))

    # A scene is safe when some path from it reaches an ending or an open node (the writer always ends).
    exits = {n for n, data in graph.nodes(data=True) if data["ending"] or data["open"]}
    reverse = graph.reverse(copy=False)
    can_finish: set[str] = set(exits)
    for node in exits:
        can_finish |= nx.descendants(reverse, node)
    for scene in story.scenes:
        if scene.id not in can_finish:
            problems.append(
                Problem("error", f"scenes[{scene.id}]", "no path from this scene reaches an ending or an open node")
            )
    if not any(scene.ending for scene in story.scenes):
        problems.append(Problem("error", "scenes", "the story has no ending scene"))
    return _ordered(problems)


def _scene_problems(scene: Scene, scene_ids: set[str], speakers: set[str], story: Story) -> list[Problem]:
    problems: list[Problem] = []
    for line in scene.lines:
        if line.speaker not in speakers:
            problems.append(
                Problem(
                    "error",
                    f"scenes[{scene.id}].lines[{line.id}].speaker",
                    f"unknown speaker {line.speaker!r}; use a character id from the bible or {NARRATOR!r}",
                )
            )
    for choice in scene.choices:
        where = f"scenes[{scene.id}].choices[{choice.id}]"
        if choice.target is not None and choice.target not in scene_ids:
            problems.append(Problem("error", f"{where}.target", f"target scene {choice.target!r} does not exist"))
        if choice.open is not None and choice.open.fallback is not None:
            fallback = choice.open.fallback
            if fallback not in scene_ids:
                missing = f"fallback scene {fallback!r} does not exist"
                problems.append(Problem("error", f"{where}.open.fallback", missing))
            elif fallback == scene.id:
                problems.append(Problem("error", f"{where}.open.fallback", "a fallback cannot be its own scene"))
    return problems


def _ordered(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: p.severity != "error")


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def nearest_ending(story: Story, scene_id: str) -> str | None:
    """The ending scene with the fewest choices from ``scene_id``, or any ending if none is reachable."""
    graph = build_graph(story)
    endings = [scene.id for scene in story.scenes if scene.ending]
    if scene_id in graph:
        lengths = nx.single_source_shortest_path_length(graph, scene_id)
        reachable = [(lengths[e], e) for e in endings if e in lengths]
        if reachable:
            return min(reachable)[1]
    return endings[0] if endings else None


def bridge_to_ending(story: Story, scene_id: str, from_scene: str) -> Scene:
    """An authored-style stand-in for a scene the writer could not produce: it leads to the nearest ending."""
    ending = nearest_ending(story, from_scene)
    if ending is None:
        raise ValueError(f"story {story.id!r} has no ending to bridge to")
    origin = story.scene_index().get(from_scene)
    return Scene(
        id=scene_id,
        title="Later",
        place=origin.place if origin is not None else story.scene(story.start).place,
        mood="quiet",
        lines=[Line(id="l1", speaker=NARRATOR, text="Hours pass. Every road tonight leads to the same place.")],
        choices=[Choice(id="c1", label="Continue", target=ending)],
    )
