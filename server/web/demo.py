"""The web player's "demo unlock": entitlements minted for any session, when ``REELFORK_DEMO_UNLOCK`` is on.

Off by default: it gives every episode away. An operator's billing signs real entitlements.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from reelfork.server.entitlements import locked_at, mint
from reelfork.server.web.bodies import json_body, read_body
from reelfork.server.web.dependencies import RuntimeDep
from reelfork.server.web.problems import ERRORS, NOT_FOUND, TOO_LARGE

router = APIRouter(prefix="/v1/demo", tags=["demo"], responses=ERRORS)


class EntitlementRequest(BaseModel):
    session: Annotated[str, Field(min_length=1, max_length=128)]
    """The session token: the entitlement is for its viewer, its story and the episode it is locked at."""


class Entitlement(BaseModel):
    entitlement: str
    """A short-lived JWT to send in ``{"type": "unlock", "entitlement": …}``."""


@router.post(
    "/entitlements",
    responses={**NOT_FOUND, **TOO_LARGE, 409: {"description": "The session is not locked."}},
    openapi_extra=json_body(EntitlementRequest),
)
async def demo_entitlement(runtime: RuntimeDep, request: Request) -> Entitlement:
    """Mint an entitlement for the episode a session is locked at (demo only: ``REELFORK_DEMO_UNLOCK=true``)."""
    body = await read_body(request, EntitlementRequest)  # any body that is not this (not even UTF-8) is a 422
    secret = runtime.settings.entitlement_secret
    if not runtime.settings.demo_unlock or secret is None:
        raise HTTPException(404, "the demo unlock is off on this server (REELFORK_DEMO_UNLOCK)")
    record = await runtime.store.load_session(body.session)
    if record is None:
        raise HTTPException(404, "no session with that token")
    story = await runtime.store.story(record.state.story, record.state.version)
    if story is None:
        raise HTTPException(404, "this session's story version is no longer available")
    episode = locked_at(story.story, record.state, record.unlocked, paywall=True)
    if episode is None:
        raise HTTPException(409, "this session is not locked; nothing to unlock")
    token = mint(secret.get_secret_value(), viewer=record.viewer, story=story.story.id, episodes=[episode.number])
    return Entitlement(entitlement=token)
