"""The attempt loop every writer backend shares: seeds in turn until a completion passes every check."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from reelfork.generation.writer import checks, prompts, schema
from reelfork.generation.writer.report import Attempt, Provenance, WriteFailed, WriteReport
from reelfork.generation.writer.request import WriteError, WriteRequest
from reelfork.generation.writer.tidy import tidy
from reelfork.narrative.story import Choice, Line, OpenNode, Scene


@dataclass(frozen=True)
class Written:
    scene: Scene
    report: WriteReport


@dataclass(frozen=True)
class Completion:
    """One model answer, from any backend; ``-1`` where the backend cannot tell."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    prompt_evaluated: int
    generation_seconds: float


class AttemptFailed(Exception):
    """One attempt got no usable answer (server down, timeout, bad response); the next seed is tried."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Source:
    """Who writes: the provenance fields that stay the same across attempts."""

    backend: str
    model: str
    temperature: float


@dataclass(frozen=True)
class Outcome:
    """The scene of the accepted attempt (``None`` if none was) and the report of all attempts."""

    scene: Scene | None
    report: WriteReport

    def written(self) -> Written:
        """The accepted scene with its report; raises :class:`WriteFailed` when no attempt was accepted."""
        if self.scene is None:
            raise WriteFailed(self.report)
        return Written(scene=self.scene, report=self.report)


def write_with_attempts(
    request: WriteRequest,
    messages: list[prompts.Message],
    complete: Callable[[int], Completion],
    *,
    max_attempts: int,
    max_tokens: int,
    policy: checks.ContentPolicy,
    source: Source,
) -> Outcome:
    """Call ``complete(seed)`` with seeds ``request.seed``, ``+1``, ... until a scene passes every check.

    The attempt loop of every backend. ``complete`` raises :class:`AttemptFailed` for an attempt
    without a usable answer; that attempt is reported and the next seed tried.
    """
    if request.choice.open is None:
        raise WriteError(f"choice {request.choice.id!r} is not an open choice")
    parent = request.path[-1]
    attempts: list[Attempt] = []
    scene: Scene | None = None
    seed = request.seed
    for attempt in range(max_attempts):
        seed = request.seed + attempt
        started = time.perf_counter()
        try:
            completion = complete(seed)
        except AttemptFailed as failure:
            completion, problems = NO_COMPLETION, [failure.problem]
        else:
            scene, problems = judge(completion, request, parent, max_tokens, policy)
        attempts.append(
            Attempt(
                seed=seed,
                prompt_tokens=completion.prompt_tokens,
                prompt_evaluated=completion.prompt_evaluated,
                completion_tokens=completion.completion_tokens,
                seconds=round(time.perf_counter() - started, 4),
                generation_seconds=round(completion.generation_seconds, 4),
                problems=tuple(problems),
            )
        )
        if scene is not None:
            break
    provenance = Provenance(
        backend=source.backend,
        model=source.model,
        prompt_sha256=prompts.prompt_digest(messages),
        seed=seed,
        temperature=source.temperature,
    )
    return Outcome(
        scene=scene, report=WriteReport(scene_id=request.scene_id, attempts=tuple(attempts), provenance=provenance)
    )


NO_COMPLETION = Completion(
    text="", finish_reason="", prompt_tokens=0, completion_tokens=0, prompt_evaluated=-1, generation_seconds=-1.0
)
"""Stands in for the answer of an attempt that got none, so its report row has counts."""


def judge(
    completion: Completion, request: WriteRequest, parent: Scene, max_tokens: int, policy: checks.ContentPolicy
) -> tuple[Scene | None, list[str]]:
    """The scene for ``completion``, or ``None`` and the reasons it was rejected."""
    if completion.finish_reason == "length":
        return None, [f"output cut at max_tokens={max_tokens} before the JSON was complete"]
    try:
        draft = tidy(schema.Draft.model_validate_json(completion.text).opened(), request.story, parent)
    except ValidationError as error:
        return None, [f"output is not a valid scene: {e['loc']}: {e['msg']}" for e in error.errors()]
    problems = checks.problems(draft, request.story, parent, request.must_end, policy)
    problems += checks.echo_problems(draft, prompts.boilerplate(request))
    if problems:
        return None, problems
    try:
        return to_scene(draft, request, parent), []
    except ValidationError as error:
        return None, [f"scene rejected by the story model: {e['loc']}: {e['msg']}" for e in error.errors()]


def to_scene(draft: schema.Draft, request: WriteRequest, parent: Scene) -> Scene:
    """The narrative scene for a checked draft: stable IDs, open choices, place and mood filled in."""
    known = set(schema.places(request.story))
    return Scene(
        id=request.scene_id,
        title=draft.title.strip(),
        place=draft.place if draft.place in known else parent.place,
        mood=parent.mood,
        lines=[
            Line(id=f"l{i}", speaker=line.speaker, text=line.text.strip())
            for i, line in enumerate(draft.lines, start=1)
        ],
        choices=[
            Choice(id=f"c{i}", label=choice.label.strip(), open=OpenNode(hint=choice.label.strip()))
            for i, choice in enumerate(draft.choices, start=1)
        ],
        ending=draft.ending,
    )
