"""Located findings about a story, and the error that carries them.

``where`` names the place precisely: a field path like ``scenes[s04].choices[c2].target`` for a
parsed story, or ``file:line`` (``file:line:column``) for text that could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One located finding: ``where`` names the scene and field, like ``scenes[s04].choices[c2].target``."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


class StoryError(ValueError):
    """A story that cannot be used; ``problems`` locates every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:10]))


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def ordered(problems: list[Problem]) -> list[Problem]:
    """Errors first, each group in the order found."""
    return sorted(problems, key=lambda p: p.severity != "error")


def from_validation(exc: ValidationError) -> list[Problem]:
    """Pydantic's errors as located problems: ``scenes[3].choices[0].target``."""
    return [_located(error) for error in exc.errors()]


def _located(error: Any) -> Problem:
    loc, message = list(error["loc"]), error["msg"]
    if error["type"] == "invalid_key" and loc:  # the last part is the offending key itself, not a place
        message = f"{message}, not {loc.pop()}"
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    return Problem("error", where or "story", message)
