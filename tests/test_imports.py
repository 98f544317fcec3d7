"""The project's modules import each other without cycles, function-level imports included, and each
part imports only the parts below it: narrative knows nothing of generation or server, generation
nothing of server."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"narrative": "reelfork.narrative", "generation": "reelfork.generation", "server": "reelfork.server"}


def module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    return modules


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import anywhere in ``tree`` may load, relative imports resolved."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> nx.DiGraph:
    modules = module_files()
    graph: nx.DiGraph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in imported(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py"):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # a package's __init__ is loaded with any of its modules: not an edge that can close a cycle
            if target and target != name and not name.startswith(target + "."):
                graph.add_edge(name, target)
    return graph


def test_the_walk_sees_function_level_imports() -> None:
    tree = ast.parse("def f():\n    from reelfork.server.store import Store\n")
    assert "reelfork.server.store" in imported(tree, "reelfork.server.x", is_package=False)


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph.number_of_nodes() > 60, "the walk found too few modules"
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*cycle, cycle[0]]) for cycle in cycles[:10])


def test_layers_point_down() -> None:
    graph = import_graph()
    forbidden = {
        "reelfork.narrative": ("reelfork.generation", "reelfork.server"),
        "reelfork.generation": ("reelfork.server",),
    }
    wrong = [
        f"{source} imports {target}"
        for source, target in graph.edges
        for layer, above in forbidden.items()
        if source.startswith(layer + ".") and target.startswith(above)
    ]
    assert not wrong, "\n".join(wrong)
