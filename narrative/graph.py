"""The story graph: scenes as nodes, choices as edges, and what must hold before anyone plays it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import networkx as nx
from reelfork.narrative.expressions import (
    Expr,
    Names,
    Var,
    Visits,
    always_one,
    check,
    check_effect,
    fold,
    written_variables,
)
from reelfork.narrative.locales import locale_problems
from reelfork.narrative.persona import placeholder_problems
from reelfork.narrative.problems import Problem, Severity, errors, ordered
from reelfork.narrative.series import CLIFFHANGER
from reelfork.narrative.story import NARRATOR, Choice, Line, Scene, Story, episode_of, is_free, membership

__all__ = ["GENERATED_PREFIX", "Problem", "Severity", "build_graph", "errors", "validate"]

GENERATED_PREFIX = "g-"


def build_graph(story: Story) -> nx.MultiDiGraph:
    """Scenes are nodes; each choice with a target is an edge keyed by its choice id.

    Open choices (written by the LLM at play time) have no edge; the node carries them in ``open``.
    """
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(
        (scene.id, {"ending": scene.ending, "open": [c.id for c in scene.choices if c.open is not None]})
        for scene in story.scenes
    )
    graph.add_edges_from(
        (scene.id, choice.target, choice.id, {"label": choice.label})
        for scene in story.scenes
        for choice in scene.choices
        if choice.target is not None
    )
    return graph


def _links(story: Story) -> nx.DiGraph:
    """Which scene leads to which, without choice details: what validation needs, built fast."""
    graph = nx.DiGraph()
    graph.add_nodes_from(scene.id for scene in story.scenes)
    graph.add_edges_from(
        (scene.id, choice.target) for scene in story.scenes for choice in scene.choices if choice.target is not None
    )
    return graph


def validate(story: Story) -> list[Problem]:
    """Every problem of a story, errors first. No errors means publishable; warnings do not block.

    Linear in the size of the story: one pass over the scenes, one search from the start, one
    backward search from all endings at once, and strongly connected components only where needed.
    """
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
    names = Names(story.variables, seen)
    for scene in story.scenes:
        problems.extend(_scene_problems(scene, seen, speakers, story))
        problems.extend(_logic_problems(scene, names))
    problems.extend(persona_problems(story))
    problems.extend(locale_problems(story))

    problems.extend(_episode_declaration(story, seen))
    if any(p.severity == "error" for p in problems):
        return ordered(problems)

    graph = _links(story)
    reachable = nx.descendants(graph, story.start) | {story.start}
    problems.extend(_episode_membership(story, reachable))
    for scene in story.scenes:
        if scene.id not in reachable:
            problems.append(Problem("warning", f"scenes[{scene.id}]", "unreachable from the start scene"))

    # A scene is safe when some path from it reaches an ending or an open node (the writer always ends).
    exits = [s.id for s in story.scenes if s.ending or any(c.open is not None for c in s.choices)]
    can_finish = _backward_reach(graph, exits)
    stuck = [scene.id for scene in story.scenes if scene.id not in can_finish]
    for scene_id in stuck:
        problems.append(
            Problem("error", f"scenes[{scene_id}]", "no path from this scene reaches an ending or an open node")
        )
    problems.extend(_closed_cycles(graph, stuck))
    if not any(scene.ending for scene in story.scenes):
        problems.append(Problem("error", "scenes", "the story has no ending scene"))
    problems.extend(_dead_ends(story, graph))
    return ordered(problems)


def _episode_declaration(story: Story, scene_ids: set[str]) -> list[Problem]:
    """Numbers 1..N in order, openings that exist (the first at ``start``), prices exactly on locked episodes."""
    problems: list[Problem] = []
    opened: dict[str, int] = {}
    for index, episode in enumerate(story.episodes):
        where = f"episodes[{index}]"
        if episode.number != index + 1:
            problems.append(Problem("error", f"{where}.number",
                                    f"episode numbers go 1, 2, 3... in list order: expected {index + 1}, "
                                    f"got {episode.number}"))
        if episode.opens not in scene_ids:
            problems.append(Problem("error", f"{where}.opens", f"opening scene {episode.opens!r} does not exist"))
        elif episode.opens in opened:
            problems.append(Problem("error", f"{where}.opens",
                                    f"scene {episode.opens!r} already opens episode {opened[episode.opens]}"))
        opened.setdefault(episode.opens, episode.number)
        if index == 0 and episode.opens != story.start:
            problems.append(Problem("error", f"{where}.opens",
                                    f"the first episode opens at the start scene {story.start!r}, "
                                    f"not {episode.opens!r}"))
        free = is_free(story, index + 1)
        if free and episode.price is not None:
            problems.append(Problem("error", f"{where}.price",
                                    f"episode {index + 1} is free (free_episodes: {story.free_episodes}); "
                                    "remove its price" if story.free_episodes is not None else
                                    "every episode is free without 'free_episodes'; set it or remove the price"))
        if not free and episode.price is None:
            problems.append(Problem("error", f"{where}.price",
                                    f"episode {index + 1} is beyond free_episodes: {story.free_episodes}; "
                                    "give it a price like {coins: 60}"))
    if story.free_episodes is not None and not story.episodes:
        problems.append(Problem("error", "free_episodes",
                                "'free_episodes' needs 'episodes': declare the episodes and price the locked ones"))
    return problems


def _episode_membership(story: Story, reachable: set[str]) -> list[Problem]:
    """Every authored scene in exactly one episode; openings reachable; cliffhangers before locked episodes."""
    if not story.episodes:
        return []
    problems: list[Problem] = []
    for index, episode in enumerate(story.episodes):
        if episode.opens not in reachable:
            problems.append(Problem("error", f"episodes[{index}].opens",
                                    f"episode {episode.number} opens at {episode.opens!r}, which cannot be "
                                    f"reached from the start scene {story.start!r}"))
    members = membership(story)
    for scene in story.scenes:
        numbers = members[scene.id]
        if not numbers:
            problems.append(Problem("error", f"scenes[{scene.id}]",
                                    "in no episode: no episode's opening scene reaches it; reach it from one, "
                                    "or declare an episode that opens here"))
        elif len(numbers) > 1:
            shown = ", ".join(str(n) for n in numbers)
            problems.append(Problem("error", f"scenes[{scene.id}]",
                                    f"in episodes {shown}: a scene belongs to one episode; reach it from one "
                                    "episode's scenes only, or declare an episode that opens here"))
    if any(p.severity == "error" for p in problems):
        return problems
    locked = {e.opens: e for e in story.episodes if not is_free(story, e.number)}
    for scene in story.scenes:
        if CLIFFHANGER in scene.tags:
            continue
        own = episode_of(story, scene.id).number
        for choice in scene.choices:
            target = choice.target if choice.target is not None else choice.open.fallback if choice.open else None
            if target in locked and locked[target].number != own:
                problems.append(Problem("warning", f"scenes[{scene.id}].tags",
                                        f"choice {choice.id!r} leads into locked episode {locked[target].number}: "
                                        f"tag this scene '{CLIFFHANGER}' so the episode ends on one"))
                break
    return problems


def _backward_reach(graph: nx.DiGraph, targets: Iterable[str]) -> set[str]:
    """Every node with a path to one of ``targets``: one breadth-first search from all of them."""
    found = set(targets)
    queue = deque(found)
    pred = graph.pred
    while queue:
        node = queue.popleft()
        for parent in pred[node]:
            if parent not in found:
                found.add(parent)
                queue.append(parent)
    return found


def _closed_cycles(graph: nx.DiGraph, stuck: list[str]) -> list[Problem]:
    """One error per cycle that no choice leaves: the shape of most 'cannot reach an ending' bugs."""
    if not stuck:
        return []
    region = graph.subgraph(stuck)
    problems: list[Problem] = []
    for component in nx.strongly_connected_components(region):
        members = sorted(component)
        first = members[0]
        if len(members) == 1 and not graph.has_edge(first, first):
            continue
        if any(target not in component for node in members for target in graph.succ[node]):
            continue
        shown = ", ".join(members[:8]) + (f" and {len(members) - 8} more" if len(members) > 8 else "")
        problems.append(
            Problem("error", f"scenes[{first}].choices",
                    f"cycle with no exit: every choice of {shown} leads back into it; "
                    "add a choice that leaves the cycle, or an ending")
        )
    return problems


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


def _logic_problems(scene: Scene, names: Names) -> list[Problem]:
    """Unknown names and type errors in conditions and effects; the timed default's choice."""
    problems: list[Problem] = []
    for choice in scene.choices:
        where = f"scenes[{scene.id}].choices[{choice.id}]"
        if choice.condition is not None:
            found_type, findings = check(choice.condition, names)
            problems.extend(Problem("error", f"{where}.condition{f.path}", f.message) for f in findings)
            if found_type is not None and found_type != "bool":
                problems.append(
                    Problem("error", f"{where}.condition",
                            f"a condition must be a bool, got {found_type}; compare it, "
                            "like {op: '>=', args: [{var: trust}, 2]}")
                )
        for index, effect in enumerate(choice.effects):
            findings = check_effect(effect, names)
            problems.extend(Problem("error", f"{where}.effects[{index}]{f.path}", f.message) for f in findings)
    if scene.default is not None and scene.default not in {choice.id for choice in scene.choices}:
        offered = ", ".join(choice.id for choice in scene.choices) or "none (an ending has no choices)"
        problems.append(
            Problem("error", f"scenes[{scene.id}].default",
                    f"default choice {scene.default!r} is not one of this scene's choices: {offered}")
        )
    return problems


def _dead_ends(story: Story, graph: nx.DiGraph) -> list[Problem]:
    """Choice sets that conditions (or used-up ``once`` choices) can hide entirely.

    Proven (error): every choice's condition is false before play begins and no effect can change
    it, because it reads only variables that no effect ever writes. Possible (warning): every choice
    is conditional, or ``once`` in a scene a cycle can bring the viewer back to, so some viewers may
    find nothing to choose; an unconditional, non-once choice rules that out.
    """
    written = written_variables([e for scene in story.scenes for c in scene.choices for e in c.effects])
    constants = {name: v.initial for name, v in story.variables.items() if name not in written}

    def lookup(ref: Var | Visits) -> bool | int | str | None:
        return constants.get(ref.var) if isinstance(ref, Var) else None

    on_cycle: set[str] | None = None
    problems: list[Problem] = []
    for scene in story.scenes:
        if not scene.choices:
            continue
        never: list[Choice] = []
        kept: list[Expr] = []
        safe = False
        for choice in scene.choices:
            value = fold(choice.condition, lookup) if choice.condition is not None else True
            if value is False:
                never.append(choice)
            if choice.once and on_cycle is None:
                on_cycle = _cyclic_nodes(graph)
            if choice.once and on_cycle is not None and scene.id in on_cycle:
                continue  # can be used up on an earlier visit
            if value is True:
                safe = True
            elif choice.condition is not None:
                kept.append(choice.condition)
        hideable = not safe and not always_one(kept)  # an if/elseif/else chain always leaves one branch
        problems.extend(_dead_end_findings(scene, never, hideable))
    return problems


def _dead_end_findings(scene: Scene, never: list[Choice], hideable: bool) -> list[Problem]:
    where = f"scenes[{scene.id}].choices"
    if len(never) == len(scene.choices):
        return [Problem("error", where, "dead end: every choice's condition is always false (it reads only "
                                        "variables no effect changes), so a viewer here has nothing to choose")]
    problems = [
        Problem("warning", f"{where}[{choice.id}].condition",
                "never offered: the condition is always false (it reads only variables no effect changes)")
        for choice in never
    ]
    if hideable:
        problems.append(
            Problem("warning", where, "possible dead end: every choice can be hidden by its condition or used up "
                                      "('once'); add an unconditional choice so no viewer is left without one")
        )
    if scene.default is not None:
        default = scene.choice(scene.default)
        if default.condition is not None or default.once:
            problems.append(
                Problem("warning", f"scenes[{scene.id}].default",
                        f"default choice {default.id!r} can be hidden; when it is, the end of the choice window "
                        "takes the first choice still offered")
            )
    return problems


def _cyclic_nodes(graph: nx.DiGraph) -> set[str]:
    """Scenes a viewer can enter more than once: on a cycle of two or more scenes, or a self-loop."""
    cyclic: set[str] = set()
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cyclic |= component
    cyclic.update(node for node, target in nx.selfloop_edges(graph))
    return cyclic


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


def persona_problems(story: Story) -> list[Problem]:
    """Located problems of the persona and of the placeholders in every authored title, line and label."""
    problems: list[Problem] = []
    persona = story.persona
    if persona is not None and persona.character not in story.speakers():
        problems.append(Problem("error", "persona.character", f"{persona.character!r} is no character of the bible"))
    has_persona = persona is not None
    for scene in story.scenes:
        texts = [(f"scenes[{scene.id}].title", scene.title)]
        texts += [(f"scenes[{scene.id}].lines[{line.id}].text", line.text) for line in scene.lines]
        texts += [(f"scenes[{scene.id}].choices[{choice.id}].label", choice.label) for choice in scene.choices]
        for where, text in texts:
            if "{" in text or "}" in text:
                problems.extend(Problem("error", where, message) for message in placeholder_problems(text, has_persona))
    return problems
