"""The viewer's persona: which character they play, the name they give it, and the looks they may pick.

Authored texts (line texts, scene titles, choice labels, translations) name the protagonist with the
placeholder ``{name}``; ``{{`` and ``}}`` write literal braces. :func:`fill` puts a viewer's name in;
:func:`check_name` decides whether a name may be used at all. Both are pure: the server calls them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from reelfork.narrative.appearance import Appearance
from reelfork.narrative.ids import Identifier

__all__ = [
    "NAME", "PLACEHOLDER", "InvalidName", "Look", "Persona", "check_name", "fill",
    "placeholder_problems", "uses_name",
]

NAME = "name"
PLACEHOLDER = "{" + NAME + "}"
"""What authored text writes where the protagonist's name goes."""
MAX_NAME = 64
"""The longest name any story may allow."""

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_JOINERS = frozenset("'\u2019\u02bc- \u2010\u2011")
"""Besides letters (and the combining marks that belong to them): apostrophes, hyphens, spaces."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Look(_Strict):
    """One appearance the viewer may pick for their character."""

    id: Identifier
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    """What the picker shows."""
    look: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    """Replaces the character's ``look`` in the bible: what every renderer draws."""
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None
    """Replaces the character's colour (its palette), when given."""
    appearance: Appearance | None = None
    """Replaces the character's structured appearance, when given."""


class Persona(_Strict):
    """The character the viewer plays."""

    character: Identifier
    """A character ID from the bible."""
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME)]
    """The default name, used when the viewer gives none (and in linear production)."""
    max_name: int = Field(default=24, ge=1, le=MAX_NAME)
    """The longest name a viewer may give, in characters."""
    looks: list[Look] = Field(default_factory=list, max_length=32)
    """The first is the default; none: the character keeps the bible's look."""

    @model_validator(mode="after")
    def _consistent(self) -> Persona:
        ids = [look.id for look in self.looks]
        if len(ids) != len(set(ids)):
            raise ValueError("look ids must be unique")
        if len(self.name) > self.max_name:
            raise ValueError(f"the default name {self.name!r} is longer than max_name ({self.max_name})")
        return self

    def look(self, look_id: str | None) -> Look | None:
        """The look with this ID (None: the default one, or None when the persona offers no looks)."""
        if look_id is None:
            return self.looks[0] if self.looks else None
        for look in self.looks:
            if look.id == look_id:
                return look
        raise KeyError(look_id)

    def slot_name(self) -> str:
        """A name as long as the longest allowed one, made of the default name: what line slots are sized for."""
        words = (self.name + " ") * (self.max_name // (len(self.name) + 1) + 1)
        return words[: self.max_name].strip() or self.name


class InvalidName(ValueError):
    """A name a viewer may not use; the message says why."""


def check_name(name: str, max_length: int) -> str:
    """The name as used (NFC, outer spaces stripped, inner runs of spaces made one), or :class:`InvalidName`.

    Allowed: Unicode letters with their combining marks, spaces, apostrophes and hyphens; at most
    ``max_length`` characters; at least one letter.
    """
    if len(name) > 4 * max_length:  # do not normalise megabytes
        raise InvalidName(f"a name has at most {max_length} characters")
    text = " ".join(unicodedata.normalize("NFC", name).split(" "))
    text = re.sub(" +", " ", text).strip(" ")
    for char in text:
        if char in _BIDI or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidName(f"a name may not contain control or bidi characters (U+{ord(char):04X})")
        if char not in _JOINERS and not unicodedata.category(char).startswith(("L", "M")):
            raise InvalidName(f"a name has letters, spaces, apostrophes and hyphens only, not {char!r}")
    if not any(unicodedata.category(char).startswith("L") for char in text):
        raise InvalidName("a name needs at least one letter")
    if len(text) > max_length:
        raise InvalidName(f"a name has at most {max_length} characters, this one has {len(text)}")
    return text


def fill(text: str, name: str) -> str:
    """``text`` with ``{name}`` replaced by ``name`` and ``{{``/``}}`` by single braces."""
    if "{" not in text and "}" not in text:
        return text
    return _FIELD.sub(lambda m: "{" if m[0] == "{{" else "}" if m[0] == "}}" else name if m[1] == NAME else m[0], text)


def uses_name(text: str) -> bool:
    return any(match[1] == NAME for match in _FIELD.finditer(text))


def placeholder_problems(text: str, has_persona: bool) -> list[str]:
    """What is wrong with the placeholders in ``text``: unknown ones, and ``{name}`` in a story without a persona."""
    found: list[str] = []
    for match in _FIELD.finditer(text):
        field = match[1]
        if field is None:
            continue
        if field != NAME:
            found.append(f"unknown placeholder {match[0]!r}; the only one is {PLACEHOLDER} "
                         "(write {{ and }} for literal braces)")
        elif not has_persona:
            found.append(f"{PLACEHOLDER} needs a 'persona' in the story (which character the viewer plays)")
    return found
