"""What a character looks like to a renderer, and whose likeness it is.

The bible's free ``look`` text is for prompts; :class:`Appearance` is the same figure in fields a
renderer can draw without parsing prose. :class:`Likeness` says whether the face is invented or a
real person's licensed likeness; a licensed one must name its release, which travels into every
clip's provenance manifest.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

__all__ = ["Appearance", "Likeness", "default_appearance"]

Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]

HairStyle = Literal["short", "long", "bob", "bun", "ponytail", "curly", "buzz", "bald"]
Build = Literal["slight", "average", "broad"]
Outfit = Literal["coat", "suit", "dress", "jacket", "sweater", "uniform", "shirt", "hoodie"]
Detail = Literal["none", "glasses", "scar", "earrings", "beard", "moustache", "hat", "scarf", "necklace", "freckles"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Appearance(_Strict):
    """A figure in fields: enough to draw the same person in every clip."""

    hair_color: Colour = "#3b2a20"
    hair_style: HairStyle = "short"
    skin_tone: Colour = "#c68e6a"
    build: Build = "average"
    outfit: Outfit = "jacket"
    outfit_color: Colour = "#34495e"
    detail: Detail = "none"
    """One signature detail that makes the figure recognisable at a glance."""


class Likeness(_Strict):
    """Whose face this is: ``invented`` by the model, or a real person's ``licensed`` likeness."""

    kind: Literal["invented", "licensed"] = "invented"
    release: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    """The reference of the signed release that licenses the likeness (required when licensed)."""

    @model_validator(mode="after")
    def _release_when_licensed(self) -> Likeness:
        if self.kind == "licensed" and self.release is None:
            raise ValueError("a licensed likeness needs its release reference ('release'): none was given")
        return self


_HAIR = ("#1f1a17", "#3b2a20", "#6b4226", "#a0522d", "#c9a66b", "#8c8c8c", "#b5651d", "#2e2e3a")
_SKIN = ("#f1c9a5", "#e0ac86", "#c68e6a", "#a86f4c", "#8d5a3b", "#5c3a24")
_STYLES: tuple[HairStyle, ...] = ("short", "long", "bob", "bun", "ponytail", "curly", "buzz")
_BUILDS: tuple[Build, ...] = ("slight", "average", "broad")
_OUTFITS: tuple[Outfit, ...] = ("coat", "suit", "dress", "jacket", "sweater", "uniform", "shirt", "hoodie")


def default_appearance(character_id: str, color: str | None) -> Appearance:
    """A stable appearance for a character that declares none: derived from its ID (and palette colour)."""
    seed = hashlib.sha256(character_id.encode()).digest()
    return Appearance(
        hair_color=_HAIR[seed[0] % len(_HAIR)],
        hair_style=_STYLES[seed[1] % len(_STYLES)],
        skin_tone=_SKIN[seed[2] % len(_SKIN)],
        build=_BUILDS[seed[3] % len(_BUILDS)],
        outfit=_OUTFITS[seed[4] % len(_OUTFITS)],
        outfit_color=color or "#" + seed[5:8].hex(),
    )
