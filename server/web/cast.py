"""The cast of a story: each character and each of the persona's looks, with the URL of its portrait."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel
from reelfork.generation.render.cast import make_portrait
from reelfork.narrative.appearance import Appearance, Likeness
from reelfork.narrative.story import Character, Story
from reelfork.server.web.dependencies import RuntimeDep
from reelfork.server.web.problems import ERRORS, NOT_FOUND

router = APIRouter(prefix="/v1", tags=["stories"], responses=ERRORS)


class CastMember(BaseModel):
    """A character as drawn: in the bible's appearance, or (``look`` set) the persona's character in one look."""

    character: str
    """The character's ID in the bible."""
    name: str
    look: str | None
    """The persona look's ID; None: the character as the bible describes it."""
    label: str | None
    """What the look picker shows, for a look."""
    appearance: Appearance
    """What is drawn: the authored appearance, or the stable default a renderer draws."""
    likeness: Likeness
    portrait: str
    """The URL of the portrait (PNG, signed with C2PA): the same bytes on every request."""


class Cast(BaseModel):
    id: str
    version: int
    members: list[CastMember]


@router.get("/stories/{story_id}/cast", responses=NOT_FOUND)
async def get_cast(runtime: RuntimeDep, request: Request, story_id: str, version: int | None = None) -> Cast:
    """Every bible character, then every persona look, each with its portrait (made once, by content)."""
    found = await runtime.store.story(story_id, version)
    if found is None:
        raise HTTPException(404, f"no story {story_id!r}" + (f" version {version}" if version else ""))
    base = runtime.settings.public_url or str(request.base_url)
    members = []
    for member, drawn in cast_of(found.story):
        relative = await asyncio.to_thread(make_portrait, drawn, runtime.settings.media_dir, runtime.dubbing.signer)
        members.append(member.model_copy(update={"portrait": f"{base.rstrip('/')}/media/{relative.as_posix()}"}))
    return Cast(id=story_id, version=found.version, members=members)


def cast_of(story: Story) -> list[tuple[CastMember, Character]]:
    """Each member (portrait URL not yet known) with the character as its portrait draws it."""
    members = [
        (CastMember(character=c.id, name=c.name, look=None, label=None, appearance=c.drawn(), likeness=c.likeness,
                    portrait=""), c)
        for c in story.bible.characters
    ]
    persona = story.persona
    if persona is not None:
        for look in persona.looks:
            drawn = story.bible_for(look.id).character(persona.character)
            members.append((
                CastMember(character=drawn.id, name=persona.name, look=look.id, label=look.label,
                           appearance=drawn.drawn(), likeness=drawn.likeness, portrait=""),
                drawn,
            ))
    return members
