"""The v1 play protocol (``protocol`` 2 in ``session``): JSON text frames, each with a ``type``. Parsing is strict;
errors have stable codes.

Every frame either way is a model here; ``asyncapi.py`` describes them and README.md's table lists them.
"""

from __future__ import annotations

import json
import reprlib
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter, ValidationError
from reelfork.narrative.ids import Identifier

VERSION = "1"
PATH = "/v1/play"
PROTOCOL = 2
"""The ``protocol`` integer in ``session``: 2 adds choice windows, episodes, the paywall and positions."""
VIEWER_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MAX_ENTITLEMENT_CHARS = 8 * 1024


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
    STALE_CHOICE = "stale_choice"
    INVALID_ENTITLEMENT = "invalid_entitlement"
    LOCKED = "locked"
    INVALID_NAME = "invalid_name"
    UNKNOWN_LOOK = "unknown_look"
    UNSUPPORTED_LOCALE = "unsupported_locale"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonaChoice(ClientMessage):
    """Who the viewer plays: a name and a look; each absent: the story's default."""

    # Not bounded here: a name too long is an ``invalid_name``, a look no story offers an ``unknown_look``.
    name: str | None = None
    look: Annotated[str, Field(max_length=256)] | None = None


class Start(ClientMessage):
    """Start a session on the story's latest version."""

    type: Literal["start"]
    story: Identifier
    viewer: Annotated[str, Field(pattern=VIEWER_PATTERN)] | None = None
    """The viewer's public id (the client's own account id); absent: the server makes one."""
    locale: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """One of the story's locales (``GET /v1/stories``); absent: the story's own language."""
    persona: PersonaChoice | None = None


class Resume(ClientMessage):
    """Continue a session, on any connection or replica."""

    type: Literal["resume"]
    session: Annotated[str, Field(min_length=1, max_length=128)]


class Choose(ClientMessage):
    """Pick a choice of the current scene; naming ``scene`` makes a late choice for a scene left harmless."""

    type: Literal["choose"]
    choice: Identifier
    scene: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class Progress(ClientMessage):
    """Playback position in seconds on the scene's clip, about once a second, paused too."""

    type: Literal["progress"]
    scene: Annotated[str, Field(min_length=1, max_length=64)]
    position: Annotated[float, Field(ge=0, le=86_400)]
    playing: StrictBool = True
    """``false`` while paused or buffering: the position then stays, and the default waits."""


class Unlock(ClientMessage):
    """An entitlement (a JWT from the operator's billing) for the locked episode."""

    type: Literal["unlock"]
    entitlement: Annotated[str, Field(min_length=1, max_length=MAX_ENTITLEMENT_CHARS)]


class ServerMessage(BaseModel):
    # ``type`` has a default here but is always sent: the schema says it is required.
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)


class PersonaInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    look: str | None
    """A look id of the story's persona; null when the persona offers no looks."""


class Session(ServerMessage):
    """The session token: 128 random bits, the only way to resume."""

    type: Literal["session"] = "session"
    session: str
    viewer: str
    """The viewer's public id: the ``sub`` of its entitlements."""
    protocol: int = PROTOCOL
    story: str
    version: int
    locale: str
    """The language of the scene text, subtitles and voice."""
    persona: PersonaInfo | None
    """The name and look the viewer plays with; null for a story without a persona."""


class LineText(BaseModel):
    """One line as the viewer reads it: their locale, their name filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    speaker: str
    """The speaker's name as the viewer knows it (their own for the persona's lines); empty for the narrator."""
    text: str
    machine_translated: bool
    """True when no authored translation exists for the viewer's locale and the text was machine-translated."""


class Offer(BaseModel):
    """A choice the viewer can take now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str
    default: bool
    """The choice the server takes when playback passes ``closes_at``: exactly one per scene with choices."""
    stream: str | None = None
    """The viewer's HLS stream of the scene this choice leads to, once its first segment is stored (null before, or
    when the next scene is not known yet): a client may pre-buffer it and cut to it without a wait."""


class WindowTimes(BaseModel):
    """When the choices are offered, in seconds on the clip's timeline: ``0 <= opens_at < closes_at``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opens_at: float
    closes_at: float


class EpisodeInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    number: int
    title: str
    free: bool


class PriceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    coins: int


class SceneMessage(ServerMessage):
    """The scene to play; ``stream`` is null until its first segment is stored and ``clip`` until the whole clip is
    (a ``clip`` frame follows with what was missing)."""

    type: Literal["scene"] = "scene"
    scene: str
    title: str
    lines: list[LineText]
    clip: str | None
    """The viewer's own complete MP4 (the shared picture with their voice, labelled): null until it is complete."""
    stream: str | None = None
    """The viewer's HLS stream of the clip (an ``EVENT`` playlist that grows segment by segment, starts at the
    beginning, and ends with ``#EXT-X-ENDLIST`` once complete): sent as soon as its first segment is stored."""
    subtitles: str | None
    """WebVTT in the viewer's locale, with the clip or the stream; speaker names are in it."""
    poster: str | None = None
    """The clip's first frame (JPEG), with the stream: what to show before it plays."""
    duration: float | None
    """The clip's planned length in seconds (the stream's segments add up to it); null until it is planned."""
    choices: list[Offer]
    choice_window: WindowTimes | None
    episode: EpisodeInfo
    ending: bool
    position: float
    """Where to continue on the clip, in seconds: the last reported position when resuming into this scene."""


class Clip(ServerMessage):
    """What a scene was sent without: its stream once the first segment is stored (``url`` still null), its complete
    MP4 once it is (``url``), with the choice window its planned duration gives."""

    type: Literal["clip"] = "clip"
    scene: str
    url: str | None
    """The viewer's complete, labelled MP4; null in a frame that brings only the stream."""
    stream: str | None = None
    """The viewer's HLS stream of the clip (as in ``scene``)."""
    poster: str | None = None
    """The clip's first frame (JPEG)."""
    subtitles: str
    duration: float
    choice_window: WindowTimes | None


class Locked(ServerMessage):
    """Sent instead of a scene of an episode the viewer has no entitlement for; ``unlock`` continues."""

    type: Literal["locked"] = "locked"
    episode: EpisodeInfo
    price: PriceInfo


class Error(ServerMessage):
    """A refused message or a failure; the connection and the session stay usable."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


ClientMessages = Start | Resume | Choose | Progress | Unlock
ServerMessages = Session | SceneMessage | Clip | Locked | Error
CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (Start, Resume, Choose, Progress, Unlock)
SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (Session, SceneMessage, Clip, Locked, Error)

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
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_JSON, "not valid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}".split(";")[0]) from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a message is a JSON object with a 'type' field")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        expected = ", ".join(CLIENT_TYPES)
        message = f"unknown message type {reprlib.repr(kind)}; expected one of {expected}"
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, message)
    try:
        return _incoming.validate_python(data)
    except RecursionError:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{kind}: nested too deeply") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or "message"
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{kind}: {field}: {first['msg']}") from None


def error(code: ErrorCode, message: str) -> Error:
    return Error(code=code, message=message)
