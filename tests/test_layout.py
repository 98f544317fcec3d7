"""The test suite's own layout: test modules never import other test modules or conftest.py (shared code lives
in tests/helpers/ or in fixtures), and so does nothing else (bench/ included)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def imported_modules(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """Every module ``source`` imports, with its line; relative imports resolved against ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.append((node.lineno, module))
            # ``from tests.server import test_fleet`` names the test module in the alias.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def package_of(path: Path) -> tuple[str, ...]:
    return path.relative_to(ROOT).parts[:-1]


def is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") or part == "conftest" for part in parts[1:])


def test_no_module_imports_a_test_module_or_conftest() -> None:
    sources = sorted([*TESTS.rglob("*.py"), *(ROOT / "bench").rglob("*.py")])
    assert len(sources) > 20
    offending = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sources
        for line, module in imported_modules(path.read_text(encoding="utf-8"), package_of(path))
        if is_test_module(module)
    ]
    assert offending == [], "\n".join(offending)


def test_the_check_sees_every_form_of_import() -> None:
    cases = {
        "from tests.server.test_fleet import WorkerProcess": True,
        "import tests.server.web.test_play": True,
        "from tests import conftest": True,
        "from tests.conftest import ServerProcess": True,
        "from . import test_play": True,
        "from ..test_fleet import WorkerProcess": True,
        "from tests.helpers.viewer import Viewer": False,
        "from tests.helpers import processes": False,
        "import pytest": False,
    }
    for source, offends in cases.items():
        modules = [module for _, module in imported_modules(source, ("tests", "server", "web"))]
        assert any(is_test_module(module) for module in modules) == offends, (source, modules)
