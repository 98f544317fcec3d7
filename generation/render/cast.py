"""Cast references: each character's (and each persona look's) portrait, made once and content-addressed.

A portrait depends on what is drawn (the structured appearance and the free ``look`` text) and on who
draws it (the renderer's name), never on the story version or the name: a new version that leaves a character
alone reuses its portrait. Portraits are PNGs signed with a C2PA manifest, like clips.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from reelfork.generation.render.encoding import FileSigner, partial_path, put_in_place
from reelfork.generation.render.figure import portrait
from reelfork.generation.render.labels import likeness_releases
from reelfork.narrative.story import Character

__all__ = ["PORTRAITS", "RENDERER", "SIZE", "make_portrait", "portrait_key"]

PORTRAITS = "portraits"
"""The media dir's folder of portraits, by content key."""
RENDERER = "animatic-portrait-1"
"""Bump when the drawing of a portrait changes for the same appearance."""
SIZE = (512, 640)

_lock = threading.Lock()
"""Two requests for a portrait not made yet make it once."""


def portrait_key(character: Character, renderer: str = RENDERER) -> str:
    """What the portrait depends on: the drawn appearance, the look text, the renderer, and a licensed likeness's
    release (declared in its manifest); never the name or the story version."""
    parts: list[object] = [character.drawn().model_dump(mode="json"), character.look, renderer]
    releases = likeness_releases([character])
    if releases:
        parts.append([release.release for release in releases])
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def make_portrait(character: Character, media: Path, signer: FileSigner | None) -> Path:
    """The portrait's path relative to ``media``: drawn, signed (declaring a licensed likeness's release) and moved
    into place the first time, found after."""
    relative = Path(PORTRAITS) / f"{portrait_key(character)}.png"
    path = media / relative
    with _lock:
        if path.exists():
            return relative
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = partial_path(path)
        try:
            portrait(character.drawn(), *SIZE).save(temporary, format="PNG")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        put_in_place(temporary, path, signer, likenesses=likeness_releases([character]))
    return relative
