"""C2PA provenance: a signed manifest in every clip saying that a trained model created it.

The manifest holds one ``c2pa.actions`` assertion, ``c2pa.created`` with the IPTC
digital source type *trainedAlgorithmicMedia*, and, when the file shows a real person's licensed
likeness, an ``org.reelfork.likeness`` assertion naming each such character and the reference of
its signed release. It is signed with ES256 (or
whatever the production key is). c2pa refuses a self-signed certificate and one
without the right extensions, so the development credentials are a small chain:
a root CA the project makes on first use, and a leaf signed by it with CA=false,
keyUsage digitalSignature, EKU emailProtection, and subject/authority key IDs.

A reader that is given the development root as a trust anchor reports the clip
``Trusted``; any other reader reports it ``Valid`` (signature and hashes check
out) with ``signingCredential.untrusted``, which is the truth about a dev cert.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from reelfork.generation.render.labels import PRODUCER, LikenessRelease
from reelfork.generation.render.request import RenderError

log = logging.getLogger(__name__)

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CREATED = "c2pa.created"
MIME_TYPE = "video/mp4"
MIME_TYPES = {".mp4": MIME_TYPE, ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
"""What the signer signs, by file suffix: clips, and the cast's portraits."""
LIKENESS = "org.reelfork.likeness"
"""The custom assertion that lists the licensed likenesses a file shows, each with its release reference."""

DEVELOPMENT_BUNDLE = "development.pem"
"""Leaf key, leaf certificate and root certificate in one file, so that they are created (or not) together."""
DEVELOPMENT_ROOT = "development-root.pem"
"""The development root alone: give it to readers (and players) that should trust dev-signed clips."""
ROOT_DAYS, LEAF_DAYS = 3650, 365


@dataclass(frozen=True)
class Credentials:
    """What signing needs: a PEM chain (leaf first), the leaf's PEM private key and its algorithm."""

    certificate_chain: bytes
    private_key: bytes
    algorithm: str
    """c2pa's name for it: ``es256``, ``es384``, ``es512``, ``ps256`` or ``ed25519``."""
    trust_anchor: bytes | None = None
    """The development root (PEM); None for production credentials, whose root readers already trust."""

    @classmethod
    def from_files(cls, certificate: Path, key: Path) -> Credentials:
        """Production credentials: a PEM certificate chain (leaf first, without the root) and its PEM key."""
        chain, private = read_pem(certificate, "certificate chain"), read_pem(key, "private key")
        try:
            loaded = serialization.load_pem_private_key(private, password=None)
        except (ValueError, TypeError) as error:
            raise RenderError(f"C2PA private key {key} is not an unencrypted PEM private key: {error}") from error
        return cls(certificate_chain=chain, private_key=private, algorithm=algorithm_of(loaded, key))


def read_pem(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RenderError(f"cannot read the C2PA {what} {path}: {error.strerror or error}") from error
    if b"-----BEGIN" not in data:
        raise RenderError(f"C2PA {what} {path} is not PEM (no '-----BEGIN' line)")
    return data


def algorithm_of(key: Any, path: Path) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in curves:
            return curves[key.curve.name]
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise RenderError(f"C2PA key {path} is of a kind c2pa cannot sign with; use EC P-256 (ES256), Ed25519 or RSA")


def development_credentials(folder: Path) -> Credentials:
    """The development chain in ``folder``, made on first use and reused after (renewed when the leaf expired).

    Several workers may start at once: each writes a complete bundle under a unique name and links it
    into place, and the first link wins; the others read the winner's, so everyone signs with one key.
    """
    folder.mkdir(parents=True, exist_ok=True)
    bundle = folder / DEVELOPMENT_BUNDLE
    if not bundle.exists() or leaf_expired(bundle.read_bytes()):
        temporary = folder / f".{DEVELOPMENT_BUNDLE}.{uuid.uuid4().hex[:12]}"
        temporary.write_bytes(new_development_bundle())
        temporary.chmod(0o600)
        try:
            if bundle.exists():
                log.warning("the development C2PA certificate in %s has expired; making a new one", folder)
                os.replace(temporary, bundle)
            else:
                os.link(temporary, bundle)
        except FileExistsError:
            pass  # another worker made it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    credentials = parse_bundle(bundle.read_bytes())
    assert credentials.trust_anchor is not None
    root = folder / DEVELOPMENT_ROOT
    if not root.exists() or root.read_bytes() != credentials.trust_anchor:
        partial = folder / f".{DEVELOPMENT_ROOT}.{uuid.uuid4().hex[:12]}"
        partial.write_bytes(credentials.trust_anchor)
        os.replace(partial, root)
    return credentials


def new_development_bundle() -> bytes:
    """A fresh root CA and leaf (both P-256), as PEM: leaf key, leaf certificate, root certificate."""
    now = datetime.datetime.now(datetime.UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name, leaf_name = subject(f"{PRODUCER} development root CA"), subject(f"{PRODUCER} development signer")
    root = (
        certificate(root_name, root_name, root_key.public_key(), now, ROOT_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(certificate_signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        certificate(leaf_name, root_name, leaf_key.public_key(), now, LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(certificate_signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)


def subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{PRODUCER} (development, not for publication)"),
        ]
    )


def certificate(
    name: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def key_usage(certificate_signing: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); the leaf signs manifests (digitalSignature), nothing else."""
    return x509.KeyUsage(
        digital_signature=not certificate_signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )


def parse_bundle(data: bytes) -> Credentials:
    key_end = data.index(b"-----END PRIVATE KEY-----") + len(b"-----END PRIVATE KEY-----\n")
    certificates = x509.load_pem_x509_certificates(data[key_end:])
    leaf, root = certificates
    pem = [cert.public_bytes(serialization.Encoding.PEM) for cert in (leaf, root)]
    chain, anchor = pem[0] + pem[1], pem[1]
    return Credentials(certificate_chain=chain, private_key=data[:key_end], algorithm="es256", trust_anchor=anchor)


def leaf_expired(data: bytes) -> bool:
    try:
        leaf = x509.load_pem_x509_certificates(data)[0]
    except ValueError:
        return True
    return leaf.not_valid_after_utc <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)


def manifest(
    title: str, producer: str, mime_type: str = MIME_TYPE, likenesses: Sequence[LikenessRelease] = ()
) -> dict[str, Any]:
    """The manifest definition: who made the file, that a trained model created it, and whose licensed
    likenesses it shows under which release."""
    assertions: list[dict[str, Any]] = [
        {
            "label": "c2pa.actions",
            "data": {"actions": [{"action": CREATED, "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]},
        }
    ]
    if likenesses:
        assertions.append(
            {"label": LIKENESS, "data": {"likenesses": [likeness.model_dump() for likeness in likenesses]}}
        )
    return {"claim_generator_info": [{"name": producer}], "title": title, "format": mime_type, "assertions": assertions}


class ClipSigner:
    """Signs finished MP4s with a C2PA manifest; an :class:`~reelfork.generation.render.encoding.FileSigner`."""

    def __init__(self, credentials: Credentials, producer: str = PRODUCER, timestamp_url: str | None = None) -> None:
        self.credentials = credentials
        self.producer = producer
        info = c2pa.C2paSignerInfo(
            alg=credentials.algorithm.encode(),
            sign_cert=credentials.certificate_chain,
            private_key=credentials.private_key,
            ta_url=timestamp_url.encode() if timestamp_url else None,
        )
        try:
            self.signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as error:
            raise RenderError(f"c2pa rejects the signing credentials: {error}") from error

    @classmethod
    def development(cls, folder: Path, producer: str = PRODUCER) -> ClipSigner:
        """Sign with the development chain kept in ``folder`` (made there on first use)."""
        return cls(development_credentials(folder), producer)

    @classmethod
    def production(
        cls, certificate: Path, key: Path, producer: str = PRODUCER, timestamp_url: str | None = None
    ) -> ClipSigner:
        return cls(Credentials.from_files(certificate, key), producer, timestamp_url)

    def sign(
        self, source: Path, destination: Path, title: str, likenesses: Sequence[LikenessRelease] = ()
    ) -> None:
        mime_type = MIME_TYPES.get(source.suffix.lower())
        if mime_type is None:
            raise RenderError(f"cannot sign {source.name}: C2PA signing here takes {', '.join(MIME_TYPES)} files")
        try:
            with (
                c2pa.Builder(manifest(title, self.producer, mime_type, likenesses)) as builder,
                source.open("rb") as original,
                destination.open("w+b") as signed,
            ):
                builder.sign(self.signer, mime_type, original, signed)
        except c2pa.C2paError as error:
            # c2pa reports a full disk as an opaque I/O error; say what it is, so callers can tell the user.
            if shutil.disk_usage(destination.parent).free < source.stat().st_size:
                raise OSError(errno.ENOSPC, "No space left on device", str(destination)) from error
            raise RenderError(f"C2PA signing of {title} failed: {error}") from error


@dataclass(frozen=True)
class Provenance:
    """What a C2PA reader found in a file."""

    state: str
    """``Trusted`` (valid and signed under a trust anchor), ``Valid`` (valid, signer unknown) or ``Invalid``."""
    actions: list[dict[str, Any]]
    issuer: str | None
    failures: list[str]
    """Validation failure codes, e.g. ``signingCredential.untrusted`` or ``assertion.bmffHash.mismatch``."""
    likenesses: list[LikenessRelease] = field(default_factory=list)
    """The licensed likenesses the manifest declares (``org.reelfork.likeness``)."""

    @property
    def valid(self) -> bool:
        return self.state in ("Valid", "Trusted")

    @property
    def created_by_ai(self) -> bool:
        return any(
            action.get("action") == CREATED and action.get("digitalSourceType") == TRAINED_ALGORITHMIC_MEDIA
            for action in self.actions
        )


def read_provenance(path: Path, trust_anchors: bytes | None = None) -> Provenance | None:
    """Validate the C2PA manifest of ``path`` with c2pa's Reader; None when the file has no manifest.

    ``trust_anchors`` (PEM roots, e.g. the development root) are the signers to trust."""
    context = None
    if trust_anchors is not None:
        settings = c2pa.Settings.from_dict(
            {"trust": {"trust_anchors": trust_anchors.decode()}, "verify": {"verify_trust": True}}
        )
        context = c2pa.Context(settings)
    reader = c2pa.Reader.try_create(path, context=context)
    if reader is None:
        return None
    with reader:
        active = reader.get_active_manifest() or {}
        results = reader.get_validation_results() or {}
        state = reader.get_validation_state() or "Invalid"
    actions = [
        action
        for assertion in active.get("assertions", [])
        if str(assertion.get("label", "")).startswith("c2pa.actions")
        for action in assertion.get("data", {}).get("actions", [])
    ]
    failures = [item["code"] for item in results.get("activeManifest", {}).get("failure", [])]
    likenesses = [
        LikenessRelease.model_validate(item)
        for assertion in active.get("assertions", [])
        if assertion.get("label") == LIKENESS
        for item in assertion.get("data", {}).get("likenesses", [])
    ]
    return Provenance(
        state=state,
        actions=actions,
        issuer=active.get("signature_info", {}).get("issuer"),
        failures=failures,
        likenesses=likenesses,
    )
