"""C2PA signing: the development chain made on first use, signed animatic clips that c2pa's own Reader
validates, and a signing step that never leaves a half-signed or unsigned file where a clip belongs."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image
from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.c2pa import (
    DEVELOPMENT_BUNDLE,
    DEVELOPMENT_ROOT,
    ClipSigner,
    Credentials,
    development_credentials,
    read_provenance,
)
from reelfork.generation.render.labels import LikenessRelease, read_aigc
from reelfork.generation.render.profiles import PROFILES
from reelfork.generation.render.request import RenderedClip, RenderError, RenderRequest
from reelfork.narrative.appearance import Likeness

from tests.helpers.media import probe as ffprobe
from tests.helpers.render import atom_paths, make_bible, make_scene


@dataclass(frozen=True)
class Signed:
    clip: RenderedClip
    signer: ClipSigner
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    folder = tmp_path_factory.mktemp("provenance")
    signer = ClipSigner.development(folder / "c2pa")
    request = RenderRequest(
        scene=make_scene(), bible=make_bible(), profile=PROFILES["preview"], output=folder / "a.mp4"
    )
    clip, seconds = AnimaticRenderer(signer=signer).render_measured(request)
    return Signed(clip, signer, seconds)


def test_development_chain_is_what_c2pa_requires(tmp_path: Path) -> None:
    credentials = development_credentials(tmp_path)
    leaf, root = x509.load_pem_x509_certificates(credentials.certificate_chain)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in list(usages)
    authority = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert authority == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.issuer == root.subject
    assert stat.S_IMODE((tmp_path / DEVELOPMENT_BUNDLE).stat().st_mode) == 0o600
    assert (tmp_path / DEVELOPMENT_ROOT).read_bytes() == credentials.trust_anchor


def test_development_chain_is_made_once_and_reused(tmp_path: Path) -> None:
    first = development_credentials(tmp_path)
    assert development_credentials(tmp_path) == first
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([DEVELOPMENT_BUNDLE, DEVELOPMENT_ROOT])


def test_signed_animatic_clip_validates(signed: Signed) -> None:
    trusted = read_provenance(signed.clip.path, signed.signer.credentials.trust_anchor)
    assert trusted is not None and trusted.state == "Trusted" and trusted.failures == [], trusted
    assert trusted.created_by_ai
    assert trusted.actions == [
        {
            "action": "c2pa.created",
            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        }
    ]
    assert signed.seconds["sign"] > 0


def test_signing_keeps_the_clip_playable_and_labelled(signed: Signed) -> None:
    codecs = {stream["codec_type"]: stream["codec_name"] for stream in ffprobe(signed.clip.path)["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    top = [path for path in atom_paths(signed.clip.path.read_bytes()) if "/" not in path]
    assert "uuid" in top, "the C2PA manifest box"
    assert top.index("moov") < top.index("mdat"), "still fast start"
    assert read_aigc(signed.clip.path) is not None
    leftovers = [path.name for path in signed.clip.path.parent.iterdir() if path.name.startswith(".")]
    assert leftovers == []


def test_a_changed_byte_invalidates_the_manifest(signed: Signed, tmp_path: Path) -> None:
    data = bytearray(signed.clip.path.read_bytes())
    data[-200] ^= 0xFF  # inside mdat: the media, not the manifest
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    provenance = read_provenance(tampered, signed.signer.credentials.trust_anchor)
    assert provenance is not None and not provenance.valid
    assert any("mismatch" in code for code in provenance.failures), provenance.failures


def test_unsigned_file_has_no_provenance(tmp_path: Path) -> None:
    clip = AnimaticRenderer().render(
        RenderRequest(scene=make_scene(), bible=make_bible(), profile=PROFILES["preview"], output=tmp_path / "u.mp4")
    )
    assert read_provenance(clip.path) is None


def test_production_credentials_from_files(tmp_path: Path, signed: Signed) -> None:
    """A production chain is given as a certificate file and a key file; here, the dev chain split in two."""
    credentials = signed.signer.credentials
    certificate, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    certificate.write_bytes(credentials.certificate_chain)
    key.write_bytes(credentials.private_key)
    signer = ClipSigner.production(certificate, key)
    assert signer.credentials.algorithm == "es256"
    signer.sign(signed.clip.path, tmp_path / "resigned.mp4", title="resigned.mp4")
    provenance = read_provenance(tmp_path / "resigned.mp4", credentials.trust_anchor)
    assert provenance is not None and provenance.state == "Trusted"


def test_unreadable_production_credentials_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"missing\.pem"):
        Credentials.from_files(tmp_path / "missing.pem", tmp_path / "key.pem")
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(RenderError, match="not PEM"):
        Credentials.from_files(tmp_path / "cert.pem", tmp_path / "cert.pem")


class FailingSigner:
    def sign(
        self, source: Path, destination: Path, title: str, likenesses: Sequence[LikenessRelease] = ()
    ) -> None:
        destination.write_bytes(source.read_bytes()[:100])  # half a file, then the failure
        raise RenderError("the signing service is down")


def test_failed_signing_leaves_no_clip_and_no_partial_file(tmp_path: Path) -> None:
    request = RenderRequest(
        scene=make_scene(), bible=make_bible(), profile=PROFILES["preview"], output=tmp_path / "c.mp4"
    )
    with pytest.raises(RenderError, match="signing service"):
        AnimaticRenderer(signer=FailingSigner()).render(request)
    # The last frame (written first, so that it exists whenever the clip does) may stay; no MP4 may.
    assert [path.name for path in tmp_path.iterdir() if path.name != "c.last.png"] == []


def test_licensed_likeness_release_is_asserted_in_the_manifest(tmp_path: Path, signed: Signed) -> None:
    bible = make_bible()
    licensed = Likeness(kind="licensed", release="REL-2026-0042 (Mei Lin, talent agency Nine Tides)")
    characters = [c.model_copy(update={"likeness": licensed}) if c.id == "mei" else c for c in bible.characters]
    request = RenderRequest(
        scene=make_scene(),
        bible=bible.model_copy(update={"characters": characters}),
        profile=PROFILES["preview"],
        output=tmp_path / "licensed.mp4",
    )
    clip = AnimaticRenderer(signer=signed.signer).render(request)
    provenance = read_provenance(clip.path, signed.signer.credentials.trust_anchor)
    assert provenance is not None and provenance.state == "Trusted", provenance
    assert provenance.likenesses == [LikenessRelease(character="mei", name="Mei Lin", release=licensed.release or "")]
    invented = read_provenance(signed.clip.path, signed.signer.credentials.trust_anchor)
    assert invented is not None and invented.likenesses == [], "invented faces declare no release"


def test_a_portrait_png_is_signed_too(tmp_path: Path, signed: Signed) -> None:
    image = tmp_path / "portrait.png"
    Image.new("RGB", (36, 64), (120, 90, 60)).save(image)
    signed.signer.sign(image, tmp_path / "signed.png", title="Mei Lin (portrait)")
    provenance = read_provenance(tmp_path / "signed.png", signed.signer.credentials.trust_anchor)
    assert provenance is not None and provenance.state == "Trusted" and provenance.created_by_ai, provenance
    with Image.open(tmp_path / "signed.png") as decoded:
        assert decoded.size == (36, 64)
