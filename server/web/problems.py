"""Errors as sent: the located problem list of every 422, and the message of every other error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from reelfork.narrative.problems import Problem, Severity


class Located(BaseModel):
    """One finding: ``where`` names the place (``scenes[s04].choices[c2].target``, ``body:3``, ``query.version``)."""

    severity: Severity
    where: str
    message: str


class ProblemList(BaseModel):
    """Why a request was refused (422): every problem found, errors first."""

    detail: list[Located]


class Message(BaseModel):
    """Why a request was refused (401, 404, ...)."""

    detail: str


class Refused(Exception):
    """Raised by a route to answer 422 with these problems."""

    def __init__(self, problems: Sequence[Problem | Located]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def where(location: Sequence[Any]) -> str:
    """A pydantic error location as a path: ``body.scenes[3].choices[0].target``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")


def problem_list(problems: Sequence[Problem | Located]) -> JSONResponse:
    located = [Located(severity=p.severity, where=p.where, message=p.message) for p in problems]
    return JSONResponse(status_code=422, content=ProblemList(detail=located).model_dump(mode="json"))


async def refused(request: Request, exc: Exception) -> JSONResponse:
    return problem_list(exc.problems if isinstance(exc, Refused) else [])


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own validation errors (query, path, JSON body) in the same shape as every other 422."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return problem_list(
        [Located(severity="error", where=where(e.get("loc", ())) or "request", message=e["msg"]) for e in errors]
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ProblemList, "description": "The request was refused; every problem found is listed."},
}
"""Responses every router declares: the 422 that is really sent, not FastAPI's ``HTTPValidationError``."""
CREATOR_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "No creator token, or a wrong one."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "No such thing."}}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": Message, "description": "The body is larger than the server's limit (REELFORK_MAX_BODY_BYTES)."}
}
"""Of every route that takes a body."""
