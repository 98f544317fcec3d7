"""Pictures of a story graph as text: Graphviz DOT and Mermaid.

Authored scenes are boxes (endings double-bordered), open choices lead to a dashed "written by the
LLM" node, written scenes (when given) are dashed boxes hanging off their open choice, and a choice
leading to a missing scene points at a red node so broken graphs can be drawn too. Edge labels are
choice labels, with viewer counts when given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reelfork.narrative.story import Choice, Scene, Story

Counts = Mapping[tuple[str, str], int]
"""(scene id, choice id) → how many viewers took that choice."""


@dataclass(frozen=True)
class WrittenNode:
    """A scene the writer produced for an open choice, to draw under it."""

    parent: str
    choice: str
    scene: str
    title: str = ""


@dataclass(frozen=True)
class _Node:
    key: str
    label: str
    kind: str
    """``scene``, ``start``, ``ending``, ``open``, ``written`` or ``missing``."""


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    label: str


def to_dot(story: Story, *, counts: Counts | None = None, written: Iterable[WrittenNode] = ()) -> str:
    """Graphviz DOT text; render with ``dot -Tsvg``."""
    nodes, edges = _layout(story, counts or {}, written)
    styles = {
        "scene": 'shape=box, style="rounded"',
        "start": 'shape=box, style="rounded,bold", color="#1f6feb"',
        "ending": 'shape=box, peripheries=2, style="rounded"',
        "open": 'shape=hexagon, style="dashed", color="#8250df"',
        "written": 'shape=box, style="rounded,dashed", color="#8250df"',
        "missing": 'shape=box, style="filled", fillcolor="#ffd7d5", color="#cf222e"',
    }
    out = [f"digraph {_dot_id(story.id)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];',
           f"  label={_dot_id(story.title)}; labelloc=t;"]
    out += [f"  {_dot_id(node.key)} [label={_dot_id(node.label)}, {styles[node.kind]}];" for node in nodes]
    out += [f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)} [label={_dot_id(edge.label)}];" for edge in edges]
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(story: Story, *, counts: Counts | None = None, written: Iterable[WrittenNode] = ()) -> str:
    """Mermaid flowchart text (renders in GitHub, GitLab and most Markdown editors)."""
    nodes, edges = _layout(story, counts or {}, written)
    ids = {node.key: f"n{index}" for index, node in enumerate(nodes)}
    shapes = {"scene": ('["', '"]'), "start": ('(["', '"])'), "ending": ('[["', '"]]'), "open": ('{{"', '"}}'),
              "written": ('["', '"]'), "missing": ('["', '"]')}
    out = ["flowchart TD"]
    for node in nodes:
        left, right = shapes[node.kind]
        out.append(f"  {ids[node.key]}{left}{_mermaid_text(node.label)}{right}")
    out += [f'  {ids[edge.source]} -->|"{_mermaid_text(edge.label)}"| {ids[edge.target]}' for edge in edges]
    out += [
        "  classDef open stroke-dasharray: 5 5,stroke:#8250df;",
        "  classDef written stroke-dasharray: 5 5,stroke:#8250df;",
        "  classDef missing fill:#ffd7d5,stroke:#cf222e;",
    ]
    for kind in ("open", "written", "missing"):
        members = [ids[node.key] for node in nodes if node.kind == kind]
        if members:
            out.append(f"  class {','.join(members)} {kind};")
    return "\n".join(out) + "\n"


def _layout(story: Story, counts: Counts, written: Iterable[WrittenNode]) -> tuple[list[_Node], list[_Edge]]:
    nodes = [_scene_node(scene, story.start) for scene in story.scenes]
    known = {scene.id for scene in story.scenes}
    edges: list[_Edge] = []
    for scene in story.scenes:
        for choice in scene.choices:
            label = _edge_label(choice, counts.get((scene.id, choice.id)))
            if choice.target is not None:
                if choice.target not in known:
                    known.add(choice.target)
                    nodes.append(_Node(choice.target, f"{choice.target} (missing)", "missing"))
                edges.append(_Edge(scene.id, choice.target, label))
            elif choice.open is not None:
                key = f"open:{scene.id}/{choice.id}"
                nodes.append(_Node(key, f"written by the LLM: {_short(choice.open.hint, 60)}", "open"))
                edges.append(_Edge(scene.id, key, label))
    for item in written:
        key = f"written:{item.scene}"
        if key not in known:
            known.add(key)  # one node per written scene, however many choices reach it
            nodes.append(_Node(key, item.title or item.scene, "written"))
        edges.append(_Edge(f"open:{item.parent}/{item.choice}", key, ""))
    keys = {node.key for node in nodes}
    return nodes, [edge for edge in edges if edge.source in keys and edge.target in keys]


def _scene_node(scene: Scene, start: str) -> _Node:
    kind = "start" if scene.id == start else "ending" if scene.ending else "scene"
    return _Node(scene.id, f"{scene.title}\n({scene.id})", kind)


def _edge_label(choice: Choice, count: int | None) -> str:
    label = choice.label
    if choice.condition is not None:
        label += " [if]"
    if choice.once:
        label += " [once]"
    return label if count is None else f"{label} ({count})"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dot_id(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _mermaid_text(text: str) -> str:
    replacements = {"&": "#amp;", '"': "#quot;", "|": "#124;", "<": "#lt;", ">": "#gt;", "\n": "<br/>"}
    return "".join(replacements.get(char, char) for char in text)
