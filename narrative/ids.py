"""Identifiers: the ID type, stable line IDs, and safe IDs made from creators' names."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Annotated

from pydantic import StringConstraints

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
]
"""Scene, choice, character and line IDs: ASCII, URL-safe, at most 64 characters."""

MAX_ID = 64


def line_id(scene_id: str, text: str, occurrence: int) -> str:
    """The stable ID of a line without an explicit one.

    It depends only on the scene, the line's text and which repetition of that text it is, so
    adding, removing or reordering other lines never changes it (ink #98); editing the text does,
    because the old dubbing no longer fits.
    """
    key = "\x1f".join([scene_id, text, str(occurrence)])
    return "l-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def slug(name: str, fallback: str = "x") -> str:
    """A readable :data:`Identifier` made from any name: ``"Café Noir!"`` → ``"Cafe-Noir"``.

    Names with nothing ASCII in them (``"夜"``) become ``fallback`` plus a short hash of the name.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).strip("-_.")
    if not cleaned:
        cleaned = f"{fallback}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return cleaned[:MAX_ID].rstrip("-_.") or fallback


class Namer:
    """Hands out unique identifiers for names; the same name always gets the same ID."""

    def __init__(self, fallback: str = "x") -> None:
        self.fallback = fallback
        self._by_name: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, name: str) -> str:
        known = self._by_name.get(name)
        if known is None:
            known = self._by_name[name] = self.fresh(name)
        return known

    def fresh(self, name: str) -> str:
        """A new ID for ``name`` even if it was seen before (two options both called 'Continue')."""
        base = slug(name, self.fallback)
        candidate, counter = base, 2
        while candidate.lower() in self._used:
            suffix = f"-{counter}"
            candidate = base[: MAX_ID - len(suffix)] + suffix
            counter += 1
        self._used.add(candidate.lower())
        return candidate
