"""The v1 play protocol: JSON text frames, each with a ``type``. Parsing is strict; errors have stable codes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from reelfork.narrative.story import Identifier


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Start(ClientMessage):
    type: Literal["start"]
    story: Identifier


class Resume(ClientMessage):
    type: Literal["resume"]
    session: Annotated[str, Field(min_length=1, max_length=128)]


class Choose(ClientMessage):
    type: Literal["choose"]
    choice: Identifier


class Progress(ClientMessage):
    type: Literal["progress"]
    scene: Annotated[str, Field(min_length=1, max_length=64)]
    position: Annotated[float, Field(ge=0, le=86_400)]


Incoming = Annotated[Start | Resume | Choose | Progress, Field(discriminator="type")]
_incoming: TypeAdapter[Start | Resume | Choose | Progress] = TypeAdapter(Incoming)
CLIENT_TYPES = ("start", "resume", "choose", "progress")


class ProtocolError(Exception):
    """A message the server refuses; ``code`` is stable, ``message`` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse(text: str) -> Start | Resume | Choose | Progress:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "a message is a JSON object with a 'type' field")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}; expected one of {', '.join(CLIENT_TYPES)}")
    try:
        return _incoming.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or "message"
        raise ProtocolError("invalid_message", f"{kind}: {field}: {first['msg']}") from None


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
