"""The v1 play protocol: JSON text frames, each with a ``type``. Parsing is strict; errors have stable codes.

Every frame either way is a model here; ``asyncapi.py`` describes them and README.md's table lists them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from reelfork.narrative.ids import Identifier

VERSION = "1"
PATH = "/v1/play"


class ErrorCode(StrEnum):
    """Every ``code`` of an ``error`` frame; clients may branch on them."""

    BAD_JSON = "bad_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_STORY = "unknown_story"
    NO_SESSION = "no_session"
    UNKNOWN_SESSION = "unknown_session"
    SESSION_IN_USE = "session_in_use"
    UNKNOWN_CHOICE = "unknown_choice"
    UNAVAILABLE_CHOICE = "unavailable_choice"
    NOT_READY = "not_ready"
    UNAVAILABLE = "unavailable"
    RENDER_FAILED = "render_failed"
    INTERNAL = "internal"


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Start(ClientMessage):
    """Start a session on the story's latest version."""

    type: Literal["start"]
    story: Identifier


class Resume(ClientMessage):
    """Continue a session, on any connection or replica."""

    type: Literal["resume"]
    session: Annotated[str, Field(min_length=1, max_length=128)]


class Choose(ClientMessage):
    """Pick a choice of the current scene."""

    type: Literal["choose"]
    choice: Identifier


class Progress(ClientMessage):
    """Playback position in seconds, about once a second."""

    type: Literal["progress"]
    scene: Annotated[str, Field(min_length=1, max_length=64)]
    position: Annotated[float, Field(ge=0, le=86_400)]


class ServerMessage(BaseModel):
    # ``type`` has a default here but is always sent: the schema says it is required.
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)


class Session(ServerMessage):
    """The session token: 128 random bits, the only way to resume."""

    type: Literal["session"] = "session"
    session: str
    story: str
    version: int


class Offer(BaseModel):
    """A choice the viewer can take now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str


class Default(BaseModel):
    """What the server chooses when the viewer has not chosen ``timeout_s`` seconds after the clip ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: str
    timeout_s: float


class SceneMessage(ServerMessage):
    """The scene to play; ``clip`` and ``duration`` are null until it is rendered (a ``clip`` frame follows)."""

    type: Literal["scene"] = "scene"
    scene: str
    title: str
    clip: str | None
    duration: float | None
    choices: list[Offer]
    ending: bool
    default: Default | None


class Clip(ServerMessage):
    """The clip of a scene sent with ``clip: null``."""

    type: Literal["clip"] = "clip"
    scene: str
    url: str
    duration: float


class Error(ServerMessage):
    """A refused message or a failure; the connection and the session stay usable."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


ClientMessages = Start | Resume | Choose | Progress
ServerMessages = Session | SceneMessage | Clip | Error
CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (Start, Resume, Choose, Progress)
SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (Session, SceneMessage, Clip, Error)

Incoming = Annotated[ClientMessages, Field(discriminator="type")]
_incoming: TypeAdapter[ClientMessages] = TypeAdapter(Incoming)


def message_type(model: type[BaseModel]) -> str:
    """The ``type`` a message model carries on the wire."""
    (value,) = get_args(model.model_fields["type"].annotation)
    return str(value)


CLIENT_TYPES = tuple(message_type(model) for model in CLIENT_MESSAGES)


class ProtocolError(Exception):
    """A message the server refuses; ``code`` is stable, ``message`` says what to fix."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse(text: str) -> ClientMessages:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            ErrorCode.BAD_JSON, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a message is a JSON object with a 'type' field")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}; expected one of {', '.join(CLIENT_TYPES)}"
        )
    try:
        return _incoming.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or "message"
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{kind}: {field}: {first['msg']}") from None


def error(code: ErrorCode, message: str) -> Error:
    return Error(code=code, message=message)
