"""Stills: the cast's portraits and the places' plates that clips are conditioned on, made once.

A :class:`Portraitist` turns a character's structured appearance (and the free ``look`` text) into a
portrait, and a place and mood into a plate (an establishing frame, empty of people).
:class:`DiffusersPortraitist` does it with a text-to-image pipeline from a local diffusers folder
(PixArt, Stable Diffusion, Flux, ...), on GPU hosts; nothing is downloaded.

:class:`ReferenceShelf` keeps them on disk, each under a key made of what it depends on: the appearance
and look (or the place and mood), the portraitist, the size. Never the story version: a new version that
leaves a character alone reuses the portrait, and so does every clip that used it.

torch and diffusers are imported inside functions, as in :mod:`reelfork.generation.render.diffusion`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageOps
from reelfork.generation.render.diffusion import check_pipeline_folder, resolve_device
from reelfork.generation.render.encoding import FileSigner, partial_path, put_in_place
from reelfork.generation.render.finishing import speaking_characters
from reelfork.generation.render.request import References, RenderError
from reelfork.narrative.appearance import Appearance
from reelfork.narrative.story import Bible, Character, Scene

__all__ = [
    "DiffusersPortraitist",
    "Portraitist",
    "ReferenceShelf",
    "colour_name",
    "plate_key",
    "plate_prompt",
    "portrait_key",
    "portrait_prompt",
    "portraitist_name",
    "reference_keys",
]

log = logging.getLogger(__name__)

STEPS, GUIDANCE = 20, 4.5
"""The text-to-image portraitist's defaults: part of its name, and so of every reference key."""
REFERENCE_SIZE = (576, 1024)
"""Portraits and plates are made once at this 9:16 size, whatever profile later uses them."""
NEGATIVE_PROMPT = "worst quality, blurry, distorted, deformed face, extra limbs, text, watermark, caption"


class Portraitist(Protocol):
    name: str
    """What makes the stills (backend, model, settings): part of every reference's key."""

    def portrait(self, character: Character, width: int, height: int) -> Image.Image:
        """The character alone, head and shoulders, facing the camera, on a plain background."""
        ...

    def plate(self, place: str, mood: str, width: int, height: int) -> Image.Image:
        """The place lit by the mood, empty of people: the establishing frame a scene there starts from."""
        ...


# --- prompts --------------------------------------------------------------------------------------

COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "charcoal": (54, 54, 62),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "white": (245, 245, 245),
    "dark brown": (59, 42, 32),
    "brown": (107, 66, 38),
    "auburn": (160, 82, 45),
    "copper": (181, 101, 29),
    "blonde": (201, 166, 107),
    "beige": (222, 200, 160),
    "red": (200, 30, 40),
    "burgundy": (110, 20, 40),
    "orange": (240, 130, 30),
    "yellow": (240, 210, 50),
    "olive": (110, 120, 50),
    "green": (40, 140, 60),
    "teal": (30, 120, 120),
    "light blue": (130, 180, 230),
    "blue": (40, 80, 190),
    "navy": (30, 40, 80),
    "slate blue": (52, 73, 94),
    "purple": (110, 50, 140),
    "pink": (230, 130, 170),
}
SKIN = ((0.80, "very fair"), (0.68, "fair"), (0.56, "light olive"), (0.44, "medium brown"), (0.32, "brown"))


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def colour_name(hex_colour: str) -> str:
    """The nearest everyday colour word for ``#rrggbb``: prompts speak words, not hex."""
    colour = rgb(hex_colour)
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], colour, strict=True)))


def skin_name(hex_colour: str) -> str:
    red, green, blue = rgb(hex_colour)
    lightness = (0.299 * red + 0.587 * green + 0.114 * blue) / 255
    return next((name for floor, name in SKIN if lightness >= floor), "deep brown")


def appearance_text(appearance: Appearance) -> str:
    detail = "" if appearance.detail == "none" else f", with {appearance.detail}"
    hair = f"{colour_name(appearance.hair_color)} {appearance.hair_style} hair"
    if appearance.hair_style == "bald":
        hair = "bald"
    return (
        f"{hair}, {skin_name(appearance.skin_tone)} skin, {appearance.build} build, "
        f"wearing a {colour_name(appearance.outfit_color)} {appearance.outfit}{detail}"
    )


def portrait_prompt(character: Character) -> str:
    """A reference-sheet portrait from the structured appearance first, then the free look text."""
    return (
        f"Character reference portrait, vertical 9:16, head and shoulders, facing the camera, neutral expression, "
        f"plain light grey studio background, soft even light, photorealistic. A person with "
        f"{appearance_text(character.drawn())}. {character.look}"
    )


def plate_prompt(place: str, mood: str) -> str:
    return (
        f"Establishing shot, vertical 9:16, cinematic, no people, no text: {place}. "
        f"The mood is {mood}; lighting and colour follow the mood."
    )


# --- keys -----------------------------------------------------------------------------------------


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def portrait_key(character: Character, portraitist: str, size: tuple[int, int] = REFERENCE_SIZE) -> str:
    """What a portrait depends on: the appearance and look text (never the name, nor the story), the maker, the size."""
    return digest("portrait", character.drawn().model_dump(mode="json"), character.look, portraitist, size)


def plate_key(place: str, mood: str, portraitist: str, size: tuple[int, int] = REFERENCE_SIZE) -> str:
    return digest("plate", place, mood, portraitist, size)


def reference_keys(scene: Scene, bible: Bible, portraitist: str, size: tuple[int, int] = REFERENCE_SIZE) -> list[str]:
    """The keys of the references a clip of ``scene`` is conditioned on: part of its content key."""
    portraits = [portrait_key(c, portraitist, size) for c in speaking_characters(scene, bible)]
    return [*portraits, plate_key(scene.place, scene.mood, portraitist, size)]


def portraitist_name(model_dir: Path, steps: int = STEPS, guidance_scale: float = GUIDANCE) -> str:
    """A diffusers portraitist's name, from settings alone: servers key clips with it without the model folder."""
    return f"diffusers:{model_dir.name}:{steps}:{guidance_scale}"


# --- the shelf ------------------------------------------------------------------------------------


class ReferenceShelf:
    """Portraits and plates as PNGs in ``folder``, each made once under its content key (signed when a signer
    is given: a portrait is served, like a clip)."""

    def __init__(
        self,
        folder: Path,
        portraitist: Portraitist,
        size: tuple[int, int] = REFERENCE_SIZE,
        signer: FileSigner | None = None,
    ) -> None:
        self.folder = folder
        self.portraitist = portraitist
        self.size = size
        self.signer = signer
        self.made = 0
        """Stills made by this shelf (the rest were found on disk)."""

    def portrait(self, character: Character) -> Path:
        path = self.folder / f"portrait-{portrait_key(character, self.portraitist.name, self.size)}.png"
        return self._kept(path, lambda: self.portraitist.portrait(character, *self.size), character.name)

    def plate(self, place: str, mood: str) -> Path:
        path = self.folder / f"plate-{plate_key(place, mood, self.portraitist.name, self.size)}.png"
        return self._kept(path, lambda: self.portraitist.plate(place, mood, *self.size), place)

    def references(self, scene: Scene, bible: Bible) -> References:
        """The portraits of the characters who speak in ``scene`` and the plate of its place."""
        portraits = {c.id: self.portrait(c) for c in speaking_characters(scene, bible)}
        return References(portraits=portraits, plate=self.plate(scene.place, scene.mood))

    def _kept(self, path: Path, make: Any, title: str) -> Path:
        if path.is_file():
            return path
        image: Image.Image = make()
        if image.size != self.size:
            image = ImageOps.fit(image.convert("RGB"), self.size, Image.Resampling.LANCZOS)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = partial_path(path)
        try:
            image.convert("RGB").save(temporary, format="PNG")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        # Two makers of one key write the same content: the last one in place wins, harmlessly.
        put_in_place(temporary, path, self.signer, title=f"{title} ({path.stem.split('-')[0]})")
        self.made += 1
        return path


# --- diffusers ------------------------------------------------------------------------------------


class DiffusersPortraitist:
    """Portraits and plates from a local diffusers text-to-image pipeline folder (PixArt, Stable Diffusion,
    Flux, Sana, ... anything ``AutoPipelineForText2Image`` knows). Each still is seeded from its prompt, so
    the same inputs make the same image."""

    def __init__(
        self,
        model_dir: Path,
        steps: int = STEPS,
        guidance_scale: float = GUIDANCE,
        device: str = "auto",
        dtype: str = "auto",
        threads: int = 1,
    ) -> None:
        self.model_dir = model_dir
        self.class_name = check_pipeline_folder(
            model_dir, f"hf download PixArt-alpha/PixArt-Sigma-XL-2-1024-MS --local-dir {model_dir}"
        )
        if steps < 1:
            raise RenderError(f"a text-to-image portraitist needs at least one denoising step, not {steps}")
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self.name = portraitist_name(model_dir, steps, guidance_scale)
        self._pipeline: Any = None

    def portrait(self, character: Character, width: int, height: int) -> Image.Image:
        return self.still(portrait_prompt(character), width, height)

    def plate(self, place: str, mood: str, width: int, height: int) -> Image.Image:
        return self.still(plate_prompt(place, mood), width, height)

    def still(self, prompt: str, width: int, height: int) -> Image.Image:
        """One image of ``prompt`` at ``width x height``: generated at the nearest size the model takes, then fitted."""
        import inspect

        import torch

        pipeline = self.pipeline()
        # Latents are 1/vae_scale_factor of the image, patched in twos; pipelines check multiples of 8 or 16.
        step = max(16, int(getattr(pipeline, "vae_scale_factor", 8)) * 2)
        size = (-(-width // step) * step, -(-height // step) * step)
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        offered: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": NEGATIVE_PROMPT,
            "width": size[0],
            "height": size[1],
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "output_type": "pil",
            "use_resolution_binning": False,  # sizes are ours to choose: fitted below
            "clean_caption": False,  # needs BeautifulSoup and ftfy, and our prompts are clean
        }
        accepted = inspect.signature(pipeline.__call__).parameters
        arguments = {name: value for name, value in offered.items() if name in accepted}
        try:
            with torch.inference_mode():
                image: Image.Image = pipeline(**arguments).images[0]
        except (RuntimeError, ValueError) as error:
            raise RenderError(f"{self.class_name} failed on a still ({prompt[:60]}...): {error}") from error
        if image.size != (width, height):
            image = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
        return image.convert("RGB")

    def pipeline(self) -> Any:
        """The text-to-image pipeline, loaded once, from disk only."""
        if self._pipeline is None:
            self._pipeline = self.load()
        return self._pipeline

    def load(self) -> Any:
        try:
            import diffusers
            import torch
            from diffusers.pipelines.auto_pipeline import AUTO_TEXT2IMAGE_PIPELINES_MAPPING
        except ImportError as error:
            raise RenderError(
                "the text-to-image portraitist needs torch and diffusers: pip install -e '.[diffusion]'"
            ) from error
        torch.set_num_threads(self.threads)
        known = {pipeline.__name__ for pipeline in AUTO_TEXT2IMAGE_PIPELINES_MAPPING.values()}
        if self.class_name not in known:
            raise RenderError(
                f"model folder {self.model_dir} holds a {self.class_name!r} pipeline, which is not text-to-image; "
                f"portraits need one of: {', '.join(sorted(known))}"
            )
        device = resolve_device(self.device)
        dtype = self.dtype if self.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
        try:
            pipeline = getattr(diffusers, self.class_name).from_pretrained(
                self.model_dir, dtype=getattr(torch, dtype), local_files_only=True
            )
        except (OSError, ValueError, RuntimeError) as error:
            raise RenderError(f"cannot load {self.class_name} from {self.model_dir}: {error}") from error
        pipeline.set_progress_bar_config(disable=True)
        log.info("loaded %s from %s on %s (%s)", self.class_name, self.model_dir, device, dtype)
        return pipeline.to(device)
