"""Cast portraits: one file per drawn figure, signed, declaring a licensed likeness's release."""

from __future__ import annotations

from pathlib import Path

from reelfork.generation.render.c2pa import ClipSigner, read_provenance
from reelfork.generation.render.cast import make_portrait, portrait_key
from reelfork.narrative.appearance import Appearance, Likeness
from reelfork.narrative.story import Character

MEI = Character(id="mei", name="Mei", look="A courier in a red jacket.", appearance=Appearance(detail="glasses"))


def test_a_portrait_is_made_once_and_named_by_what_is_drawn(tmp_path: Path) -> None:
    first = make_portrait(MEI, tmp_path, None)
    made = (tmp_path / first).stat().st_mtime_ns
    assert make_portrait(MEI.model_copy(update={"name": "Zoe"}), tmp_path, None) == first  # the name is not drawn
    assert (tmp_path / first).stat().st_mtime_ns == made
    assert portrait_key(MEI.model_copy(update={"appearance": Appearance(detail="hat")})) != portrait_key(MEI)
    assert portrait_key(MEI.model_copy(update={"look": "A courier in a grey coat."})) != portrait_key(MEI)


def test_a_licensed_likeness_s_portrait_declares_its_release(tmp_path: Path) -> None:
    signer = ClipSigner.development(tmp_path / "c2pa")
    licensed = MEI.model_copy(update={"likeness": Likeness(kind="licensed", release="REL-2026-0042")})
    assert portrait_key(licensed) != portrait_key(MEI)
    provenance = read_provenance(tmp_path / "media" / make_portrait(licensed, tmp_path / "media", signer))
    assert provenance is not None and provenance.created_by_ai
    assert [(item.character, item.release) for item in provenance.likenesses] == [("mei", "REL-2026-0042")]
    invented = read_provenance(tmp_path / "media" / make_portrait(MEI, tmp_path / "media", signer))
    assert invented is not None and invented.likenesses == []
