"""What one write call did: attempts, token counts, timings, problems, and where the scene came from.

Plain frozen dataclasses so the server can store them next to the scene (:func:`WriteReport.to_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from reelfork.generation.writer.request import WriteError


@dataclass(frozen=True)
class Attempt:
    seed: int
    prompt_tokens: int
    """Tokens in the prompt."""
    prompt_evaluated: int
    """Prompt tokens actually evaluated; the rest came from the KV cache (-1 if unknown)."""
    completion_tokens: int
    seconds: float
    generation_seconds: float
    """Time spent generating completion tokens, prompt evaluation excluded (-1 if unknown)."""
    problems: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Provenance:
    backend: str
    model: str
    """The model file's name."""
    prompt_sha256: str
    seed: int
    """The seed of the accepted attempt (of the last one when none was accepted)."""
    temperature: float


@dataclass(frozen=True)
class WriteReport:
    scene_id: str
    attempts: tuple[Attempt, ...]
    provenance: Provenance

    @property
    def accepted(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].accepted

    @property
    def prompt_tokens(self) -> int:
        return sum(a.prompt_tokens for a in self.attempts)

    @property
    def completion_tokens(self) -> int:
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)

    @property
    def problems(self) -> list[str]:
        return [f"attempt {i + 1}: {p}" for i, a in enumerate(self.attempts) for p in a.problems]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            accepted=self.accepted,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            seconds=self.seconds,
        )
        return data


class WriteFailed(WriteError):
    """A :class:`WriteError` that carries the report of every failed attempt."""

    def __init__(self, report: WriteReport) -> None:
        self.report = report
        lines = "\n".join(f"  {p}" for p in report.problems) or "  (no attempt was made)"
        super().__init__(f"no acceptable scene for {report.scene_id} after {len(report.attempts)} attempt(s):\n{lines}")

    def __reduce__(self) -> tuple[type[WriteFailed], tuple[WriteReport]]:
        # Raised in a worker process and re-raised in the server: rebuild from the report, not the message.
        return (WriteFailed, (self.report,))
