"""Cast references: each character's (and each persona look's) portrait, made once and content-addressed.

A portrait depends on what is drawn (the structured appearance and the free ``look`` text) and on who
draws it (the renderer's name), never on the story version: a new version that leaves a character
alone reuses its portrait. Portraits are PNGs signed with a C2PA manifest, like clips.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import c2pa
from reelfork.generation.render.c2pa import ClipSigner, manifest
from reelfork.generation.render.figure import portrait
from reelfork.generation.render.request import RenderError
from reelfork.narrative.appearance import Appearance

__all__ = ["PORTRAITS", "RENDERER", "SIZE", "make_portrait", "portrait_key"]

PORTRAITS = "portraits"
"""The media dir's folder of portraits, by content key."""
RENDERER = "animatic-portrait-1"
"""Bump when the drawing of a portrait changes for the same appearance."""
SIZE = (512, 640)
PNG = "image/png"

_lock = threading.Lock()
"""Two requests for a portrait not made yet make it once."""


def portrait_key(appearance: Appearance, look: str, renderer: str = RENDERER) -> str:
    payload = json.dumps([appearance.model_dump(mode="json"), look, renderer], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def make_portrait(appearance: Appearance, look: str, media: Path, signer: ClipSigner | None) -> Path:
    """The portrait's path relative to ``media``: drawn, signed and moved into place the first time, found after."""
    relative = Path(PORTRAITS) / f"{portrait_key(appearance, look)}.png"
    path = media / relative
    with _lock:
        if path.exists():
            return relative
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.partial.png")
        signed = temporary.with_suffix(".signed.png")
        try:
            portrait(appearance, *SIZE).save(temporary, format="PNG")
            if signer is None:
                os.replace(temporary, path)
            else:
                sign_png(signer, temporary, signed, title=path.name)
                os.replace(signed, path)
        finally:
            temporary.unlink(missing_ok=True)
            signed.unlink(missing_ok=True)
    return relative


def sign_png(signer: ClipSigner, source: Path, destination: Path, title: str) -> None:
    """``source`` with the signer's C2PA manifest (created by a trained model) embedded, at ``destination``."""
    definition = {**manifest(title, signer.producer), "format": PNG}
    try:
        with c2pa.Builder(definition) as builder, source.open("rb") as original, destination.open("w+b") as out:
            builder.sign(signer.signer, PNG, original, out)
    except c2pa.C2paError as error:
        raise RenderError(f"C2PA signing of {title} failed: {error}") from error
