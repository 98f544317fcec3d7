"""Entitlement tokens: every reason a token is refused, both key kinds, and what a session has unlocked."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError
from reelfork.server.entitlements import InvalidEntitlement, Verifier, covers, merged, mint, public_key_algorithm
from reelfork.server.settings import Settings

SECRET = "s" * 32


LONG = 86_400
"""Tokens made when the tests are collected must outlive a long suite: only the expiry test expires."""

def pem(public_key: PublicKeyTypes) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_valid_hs256_token_unlocks_its_episodes() -> None:
    token = mint(SECRET, viewer="v1", story="s", episodes=[2, 3])
    claims = Verifier(SECRET, "HS256").verify(token, viewer="v1", story="s", episode=3)
    assert claims.episodes == [2, 3]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (mint("o" * 32, viewer="v1", story="s", episodes="all", ttl_s=LONG), "signature does not verify"),
        (mint(SECRET, viewer="v1", story="s", episodes="all", ttl_s=-5), "expired"),
        (mint(SECRET, viewer="v2", story="s", episodes="all", ttl_s=LONG), "another viewer"),
        (mint(SECRET, viewer="v1", story="t", episodes="all", ttl_s=LONG), "story 't', not 's'"),
        (mint(SECRET, viewer="v1", story="s", episodes=[1, 3], ttl_s=LONG), "does not cover episode 2"),
        (jwt.encode({"sub": "v1", "story": "s", "episodes": "all"}, SECRET, algorithm="HS256"), "no 'exp' claim"),
        (jwt.encode({"sub": "v1", "story": "s", "episodes": "some", "exp": time.time() + 86_400}, SECRET),
         "'episodes' claim is invalid"),
        (jwt.encode({"sub": "v1", "story": "s", "episodes": "all", "exp": time.time() + 86_400}, SECRET * 2,
                    algorithm="HS512"), "signed with HS256"),
        ("garbage", "not a valid entitlement"),
    ],
)
def test_refusals_say_why(token: str, reason: str) -> None:
    with pytest.raises(InvalidEntitlement, match=reason):
        Verifier(SECRET, "HS256").verify(token, viewer="v1", story="s", episode=2)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_public_keys_verify_tokens_signed_by_their_private_half(algorithm: str) -> None:
    private = Ed25519PrivateKey.generate() if algorithm == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    key = pem(private.public_key())
    assert public_key_algorithm(key) == algorithm
    claims = {"sub": "v1", "story": "s", "episodes": "all", "exp": int(time.time() + 60)}
    verifier = Verifier(key, algorithm)
    assert verifier.verify(jwt.encode(claims, private, algorithm=algorithm), viewer="v1", story="s", episode=9)
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    with pytest.raises(InvalidEntitlement):
        verifier.verify(forged, viewer="v1", story="s", episode=9)
    hs256 = mint(SECRET, viewer="v1", story="s", episodes="all")
    with pytest.raises(InvalidEntitlement, match=f"signed with {algorithm}"):
        verifier.verify(hs256, viewer="v1", story="s", episode=9)


def test_unsupported_keys_and_short_secrets_are_configuration_errors() -> None:
    rsa_key = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
    with pytest.raises(ValidationError, match="Ed25519 \\(EdDSA\\) or P-256"):
        Settings(entitlement_public_key=rsa_key)
    with pytest.raises(ValidationError, match="not a PEM public key"):
        Settings(entitlement_public_key="hello")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(entitlement_secret="short")
    with pytest.raises(ValidationError, match="REELFORK_DEMO_UNLOCK=true needs REELFORK_ENTITLEMENT_SECRET"):
        Settings(demo_unlock=True)
    with pytest.raises(ValidationError, match="not both"):
        Settings(entitlement_secret=SECRET, entitlement_public_key=pem(Ed25519PrivateKey.generate().public_key()))


def test_what_a_session_has_unlocked_only_grows() -> None:
    assert merged([2], [3, 2]) == [2, 3] and merged([2], "all") == "all" and merged("all", [1]) == "all"
    assert covers("all", 7) and covers([2, 3], 3) and not covers([2], 3)
