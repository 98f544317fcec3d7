"""Entitlements: JWTs from the operator's billing that unlock paid episodes for one viewer of one story.

Claims: ``sub`` (the session's public ``viewer`` id), ``story``, ``episodes`` (episode numbers, or ``"all"``)
and ``exp``. Signed HS256 with ``REELFORK_ENTITLEMENT_SECRET``, or EdDSA/ES256 with the key whose public half
is ``REELFORK_ENTITLEMENT_PUBLIC_KEY``. With neither set there is no paywall.
"""

from __future__ import annotations

import functools
import time
from typing import Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from reelfork.narrative.state import ViewerState, current_episode
from reelfork.narrative.story import Episode, Story, is_free

Unlocked = list[int] | Literal["all"]
"""What a session has unlocked: episode numbers, or every episode."""
MIN_SECRET_CHARS = 32
DEMO_TTL_S = 600


class InvalidEntitlement(ValueError):
    """A token that does not unlock this episode for this viewer; the message says why."""


class Claims(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: str
    story: str
    episodes: list[int] | Literal["all"] = Field(min_length=1)
    exp: int


def public_key_algorithm(pem: str) -> str:
    """The JWT algorithm of a PEM public key: EdDSA for Ed25519, ES256 for P-256; ValueError for others."""
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("the entitlement public key must be Ed25519 (EdDSA) or P-256 (ES256)")


class Verifier:
    """Checks entitlement tokens against one key."""

    def __init__(self, key: str, algorithm: str) -> None:
        self.key = key
        self.algorithm = algorithm

    def verify(self, token: str, *, viewer: str, story: str, episode: int) -> Claims:
        """The claims of a token unlocking ``episode`` of ``story`` for ``viewer``; else :class:`InvalidEntitlement`."""
        try:
            raw = jwt.decode(token, self.key, algorithms=[self.algorithm], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise InvalidEntitlement("the entitlement has expired; get a fresh one") from None
        except jwt.InvalidSignatureError:
            raise InvalidEntitlement("the entitlement's signature does not verify with this server's key") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidEntitlement(f"the entitlement must be signed with {self.algorithm}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidEntitlement(f"the entitlement has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidEntitlement(f"not a valid entitlement: {exc}") from None
        try:
            claims = Claims.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise InvalidEntitlement(f"the entitlement's {field!r} claim is invalid: {first['msg']}") from None
        if claims.sub != viewer:
            raise InvalidEntitlement("the entitlement is for another viewer")
        if claims.story != story:
            raise InvalidEntitlement(f"the entitlement is for story {claims.story!r}, not {story!r}")
        if not covers(claims.episodes, episode):
            raise InvalidEntitlement(f"the entitlement does not cover episode {episode}")
        return claims


@functools.cache
def verifier(secret: str | None, public_key: str | None) -> Verifier | None:
    """The verifier for the configured key; ``None`` when neither is set: no paywall."""
    if secret is not None:
        return Verifier(secret, "HS256")
    if public_key is not None:
        return Verifier(public_key, public_key_algorithm(public_key))
    return None


def mint(secret: str, *, viewer: str, story: str, episodes: Unlocked, ttl_s: float = DEMO_TTL_S) -> str:
    """An HS256 entitlement, as an operator's billing would sign one (the demo unlock and tests use it)."""
    claims = {"sub": viewer, "story": story, "episodes": episodes, "exp": int(time.time() + ttl_s)}
    return jwt.encode(claims, secret, algorithm="HS256")


def covers(unlocked: Unlocked, episode: int) -> bool:
    return unlocked == "all" or episode in unlocked


def merged(unlocked: Unlocked, more: Unlocked) -> Unlocked:
    if unlocked == "all" or more == "all":
        return "all"
    return sorted(set(unlocked) | set(more))


def is_open(story: Story, episode: int, unlocked: Unlocked, paywall: bool) -> bool:
    """Whether a viewer with ``unlocked`` may watch ``episode``: no paywall, a free episode, or unlocked."""
    return not paywall or is_free(story, episode) or covers(unlocked, episode)


def locked_at(story: Story, state: ViewerState, unlocked: Unlocked, paywall: bool) -> Episode | None:
    """The episode a viewer is held at (its scene is not sent until an entitlement unlocks it), or ``None``."""
    episode = current_episode(story, state)
    return None if is_open(story, episode.number, unlocked, paywall) else episode
