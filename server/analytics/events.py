"""One playback event, as kept in a story version's event stream and exported to creators."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

EventKind = Literal[
    "started", "resumed", "entered", "progress", "chose", "paywall", "unlocked", "ending", "disconnected"
]


class Event(BaseModel):
    """What a session did, when. Nothing personal beyond the public ``viewer`` id is kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EventKind
    at: float
    """Epoch seconds."""
    story: str
    version: int
    session: str
    """A digest of the session's token (never the token)."""
    viewer: str
    locale: str
    look: str
    scene: str = ""
    episode: int = 0
    """The episode of ``scene`` (``paywall``, ``unlocked``: the locked episode)."""
    arrival: int = 0
    """Which arrival at ``scene`` this is (the length of the session's path): a resume is no new entry."""
    choice: str = ""
    defaulted: bool = False
    """``chose``: taken by default when the choice window closed."""
    seconds: float = 0.0
    """``progress``: the playback position on the scene's clip."""

    def fields(self) -> dict[str, str]:
        """The event as a stream entry's fields."""
        return {name: _text(value) for name, value in self.model_dump().items()}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Event:
        return cls.model_validate({**fields, "defaulted": fields.get("defaulted") == "1"})


COLUMNS = tuple(Event.model_fields)
"""The export's columns, in order."""


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
