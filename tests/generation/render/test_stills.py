"""Portraits and plates from a text-to-image pipeline, through the real loading code: a tiny random-weight
PixArt-Sigma pipeline is built here, saved, and loaded back from its folder. Nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reelfork.generation.render.c2pa import ClipSigner, read_provenance
from reelfork.generation.render.request import RenderError
from reelfork.generation.render.stills import (
    DiffusersPortraitist,
    ReferenceShelf,
    colour_name,
    plate_key,
    portrait_key,
    portrait_prompt,
    reference_keys,
)
from reelfork.narrative.appearance import Appearance, Likeness

from tests.helpers.render import make_bible, make_scene
from tests.helpers.tiny_ltx import build_tiny_ltx
from tests.helpers.tiny_pixart import build_tiny_pixart

os.environ["HF_HUB_OFFLINE"] = "1"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers.*")

SIZE = (36, 64)


@dataclass(frozen=True)
class Made:
    model: Path
    portraitist: DiffusersPortraitist
    shelf: ReferenceShelf
    signer: ClipSigner


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    folder = tmp_path_factory.mktemp("stills")
    build_tiny_pixart(folder / "model")
    portraitist = DiffusersPortraitist(folder / "model", steps=2, device="cpu")
    signer = ClipSigner.development(folder / "c2pa")
    return Made(folder / "model", portraitist, ReferenceShelf(folder / "shelf", portraitist, SIZE, signer), signer)


def test_portrait_and_plate_are_images_of_the_asked_size(made: Made) -> None:
    mei = make_bible().character("mei")
    portrait = made.portraitist.portrait(mei, 40, 72)
    plate = made.portraitist.plate("rooftop garden at night", "tense", 40, 72)
    assert portrait.size == plate.size == (40, 72) and portrait.mode == plate.mode == "RGB"
    assert not np.array_equal(np.asarray(portrait), np.asarray(plate)), "different prompts, different stills"
    again = made.portraitist.portrait(mei, 40, 72)
    assert np.array_equal(np.asarray(portrait), np.asarray(again)), "seeded from the prompt: the same inputs repeat"


def test_prompt_speaks_the_structured_appearance_in_words() -> None:
    mei = make_bible().character("mei").model_copy(
        update={"appearance": Appearance(hair_color="#1a1a1a", hair_style="bob", outfit="jacket",
                                         outfit_color="#c81e28", detail="scar", skin_tone="#f1c9a5")}
    )
    prompt = portrait_prompt(mei)
    assert "black bob hair" in prompt and "red jacket" in prompt and "with scar" in prompt
    assert "very fair skin" in prompt and "#" not in prompt.split(".")[1], prompt
    assert mei.look in prompt
    assert colour_name("#34495e") == "slate blue"


def test_shelf_makes_each_reference_once_and_signs_it(made: Made) -> None:
    bible, scene = make_bible(), make_scene()
    first = made.shelf.references(scene, bible)
    assert sorted(first.portraits) == ["jun", "mei"] and first.plate is not None
    made_before = made.shelf.made
    again = made.shelf.references(scene, bible)
    assert again == first and made.shelf.made == made_before, "found on disk, not made again"
    for path in [*first.portraits.values(), first.plate]:
        with Image.open(path) as image:
            assert image.size == SIZE
        provenance = read_provenance(path, made.signer.credentials.trust_anchor)
        assert provenance is not None and provenance.state == "Trusted" and provenance.created_by_ai
    assert [p.name for p in made.shelf.folder.iterdir() if p.name.startswith(".")] == []


def test_reference_keys_follow_appearance_and_look_never_name_nor_likeness(made: Made) -> None:
    bible, name = make_bible(), made.portraitist.name
    mei = bible.character("mei")
    key = portrait_key(mei, name)
    assert portrait_key(mei.model_copy(update={"name": "Mara"}), name) == key
    assert portrait_key(mei.model_copy(update={"likeness": Likeness(kind="licensed", release="R-1")}), name) == key
    assert portrait_key(mei.model_copy(update={"look": "long silver hair"}), name) != key
    assert portrait_key(mei.model_copy(update={"appearance": Appearance(detail="hat")}), name) != key
    assert portrait_key(mei, "diffusers:other-model:20:4.5") != key
    assert plate_key("rooftop", "tense", name) != plate_key("rooftop", "calm", name)
    keys = reference_keys(make_scene(), bible, name)
    jun = portrait_key(bible.character("jun"), name)
    assert keys == [key, jun, plate_key("rooftop garden at night", "tense", name)]


def test_missing_folder_teaches_where_the_model_comes_from(tmp_path: Path) -> None:
    with pytest.raises(RenderError) as raised:
        DiffusersPortraitist(tmp_path / "no-model")
    assert "does not exist" in str(raised.value) and "hf download" in str(raised.value)


def test_incomplete_folder_names_the_missing_file(made: Made, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(made.model, copy)
    (copy / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(RenderError, match=r"transformer/\*\.safetensors"):
        DiffusersPortraitist(copy)


def test_a_video_pipeline_is_refused_as_a_portraitist(tmp_path: Path) -> None:
    build_tiny_ltx(tmp_path / "video")
    portraitist = DiffusersPortraitist(tmp_path / "video", steps=1, device="cpu")
    with pytest.raises(RenderError, match=r"LTXConditionPipeline.*not text-to-image"):
        portraitist.portrait(make_bible().character("mei"), *SIZE)


def test_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules.update(torch=None, diffusers=None, transformers=None); "
        "import reelfork.generation.render.stills; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
