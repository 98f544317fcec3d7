"""JSON bodies a route reads itself, after its dependencies (the creator token) have run, and their OpenAPI entry."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from reelfork.server.web.problems import Located, Refused, where

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``; a located 422 for anything else (bad JSON, too deep, huge numbers)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        located = [Located(severity="error", where=where(("body", *e["loc"])), message=e["msg"]) for e in exc.errors()]
        raise Refused(located) from None


def inlined(schema: Any, definitions: dict[str, Any], within: frozenset[str] = frozenset()) -> Any:
    """``schema`` with every ``#/$defs/...`` reference replaced by its definition; a recursive one (a story's
    nested conditions) is left open inside itself, as any JSON value: the route validates it all the same."""
    if isinstance(schema, dict):
        reference = schema.get("$ref", "")
        if reference.startswith("#/$defs/"):
            name = reference.removeprefix("#/$defs/")
            if name in within:
                return {"description": f"a {name}, as above"}
            return inlined(definitions[name], definitions, within | {name})
        return {key: inlined(value, definitions, within) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [inlined(item, definitions, within) for item in schema]
    return schema


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the required JSON body of a route that reads it itself."""
    schema = model.model_json_schema()
    content = {"application/json": {"schema": inlined(schema, schema.get("$defs", {}))}}
    return {"requestBody": {"required": True, "content": content}}
