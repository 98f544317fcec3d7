"""Video diffusion: a scene as generated footage, from a local diffusers model folder.

``render`` follows the algorithm:

1. voice the whole scene first: the voice decides how long the clip is;
2. load the pipeline from the model folder, once per device and dtype, never from the network;
3. generate the footage in segments, each conditioned on the frame before it, until the voice is
   covered. The first segment starts from the request's references when it has them: the place's
   plate with the portraits of the first two speakers standing in it (continuity across clips
   whichever path led to the scene); else from the previous clip's last frame (linear episodes).
   Each next segment starts on the last frame of the segment before (continuity within the clip).
   With LTX, the portraits of whoever speaks in a segment also enter it as soft keyframes, so
   identity holds past the first frame;
4. draw the subtitles and the AI mark on the decoded frames, encode them with the voice, sign.

Two model families: LTX-Video (``LTXConditionPipeline``, conditioned through
``LTXVideoCondition(image=..., frame_index=0)``) and Wan (``WanImageToVideoPipeline``).
Wan's image-to-video pipeline takes only the first frame, so there the portraits act through the opening
frame alone. The family comes from ``_class_name`` in the folder's ``model_index.json``. Models
want sizes in multiples of 32 (LTX) or 16 (Wan): the footage is generated at the
profile's size rounded up and centre-cropped back, so nothing is stretched.

torch and diffusers are imported inside functions: this module imports on a machine
without them (the animatic's), and fails only when asked to render.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from reelfork.generation.render.captions import Subtitle, page_ends, subtitle_pages
from reelfork.generation.render.drawing import Frame, Overlay, Picture, rgb_to_yuv420
from reelfork.generation.render.encoding import FileSigner
from reelfork.generation.render.finishing import (
    Stopwatch,
    finish,
    finished_clip,
    labelled_encoder,
    load_previous_frame,
    produce_id,
    speaking_characters,
)
from reelfork.generation.render.labels import BADGE_SECONDS, PRODUCER, aigc_label, badge
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.request import References, RenderedClip, RenderError, RenderRequest
from reelfork.generation.render.scenery import backdrop
from reelfork.generation.render.soundtrack import Soundtrack, SpokenLine, soundtrack
from reelfork.generation.render.voice import EspeakSynthesizer, Silence, Synthesizer
from reelfork.narrative.story import NARRATOR, Bible, Character, Scene

log = logging.getLogger(__name__)

NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted, deformed faces, text, watermark"
MODEL_INDEX = "model_index.json"
WEIGHTS = ("*.safetensors", "*.bin")


@dataclass(frozen=True)
class ModelFamily:
    name: str
    pipeline: str
    """The diffusers pipeline class that loads the folder."""
    size_multiple: int
    """Width and height must be multiples of this."""
    frame_step: int
    """Frames per call are ``frame_step * k + 1`` (the VAE's temporal compression)."""


LTX = ModelFamily(name="ltx", pipeline="LTXConditionPipeline", size_multiple=32, frame_step=8)
WAN = ModelFamily(name="wan", pipeline="WanImageToVideoPipeline", size_multiple=16, frame_step=4)


def model_family(class_name: str, folder: Path) -> ModelFamily:
    """LTX folders (``LTXPipeline``, ``LTXConditionPipeline``, ...) all load as the condition pipeline; Wan as I2V."""
    if class_name.startswith("LTX"):
        return LTX
    if class_name.startswith("Wan"):
        return WAN
    raise RenderError(
        f"model folder {folder} holds a {class_name!r} pipeline; the diffusion renderer runs LTX-Video "
        f"(LTX*Pipeline) and Wan (Wan*Pipeline) models"
    )


def check_model_folder(folder: Path) -> ModelFamily:
    """The folder's model family, once every component ``model_index.json`` lists is present on disk."""
    class_name = check_pipeline_folder(folder, f"hf download Lightricks/LTX-Video --local-dir {folder}")
    return model_family(class_name, folder)


def check_pipeline_folder(folder: Path, example: str) -> str:
    """The pipeline class a diffusers folder holds, once every component ``model_index.json`` lists is on disk.
    ``example`` is a command that fills the folder, for the error that finds it missing."""
    if not folder.is_dir():
        raise RenderError(
            f"model folder {folder} does not exist; download a diffusers pipeline there first "
            f"(e.g. `{example}`): nothing is downloaded at render time"
        )
    index_path = folder / MODEL_INDEX
    if not index_path.is_file():
        raise RenderError(f"model folder {folder} is incomplete: {MODEL_INDEX} is missing (not a diffusers pipeline)")
    try:
        index = json.loads(index_path.read_text())
        class_name = str(index["_class_name"])
    except (ValueError, KeyError, TypeError) as error:
        raise RenderError(f"{index_path} is not a diffusers model index (no '_class_name'): {error}") from error
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[1] is None:
            continue  # metadata, or an optional component the pipeline was saved without
        missing = missing_file(folder / component, str(spec[1]))
        if missing is not None:
            raise RenderError(
                f"model folder {folder} is incomplete: {component}/{missing} is missing "
                f"({MODEL_INDEX} lists {component} as {spec[1]}); copy the whole pipeline folder"
            )
    return class_name


def missing_file(component: Path, class_name: str) -> str | None:
    """The first file a component of type ``class_name`` needs that is not in its folder ("" for the folder)."""
    if not component.is_dir():
        return ""
    if "Scheduler" in class_name:
        needed = ["scheduler_config.json"]
    elif "Tokenizer" in class_name:
        needed = ["tokenizer_config.json"]
    elif "Processor" in class_name:
        needed = ["preprocessor_config.json"]
    else:
        needed = ["config.json"]
        if not any(any(component.glob(pattern)) for pattern in WEIGHTS):
            return "config.json" if not (component / "config.json").exists() else "*.safetensors (the weights)"
        for index in component.glob("*.index.json"):
            needed += sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
    return next((name for name in needed if not (component / name).is_file()), None)


# --- prompts --------------------------------------------------------------------------------------


def scene_prompt(scene: Scene, bible: Bible, characters: list[Character]) -> str:
    """What stays true for the whole scene: place, mood, world, and each character's look."""
    parts = [
        f"A vertical 9:16 cinematic shot from a microdrama. {scene.place}; the mood is {scene.mood}.",
        f"World: {bible.setting} Tone: {bible.tone}.",
    ]
    if characters:
        parts.append("In frame: " + "; ".join(f"{c.name}, {c.look}" for c in characters) + ".")
    if bible.style_rules:
        parts.append("Style: " + "; ".join(bible.style_rules) + ".")
    return " ".join(parts)


def shot_prompt(scene: str, spoken: list[SpokenLine], bible: Bible) -> str:
    """The scene prompt, plus who speaks during this segment: the model animates the speaker."""
    action = []
    for line in (spoken.line for spoken in spoken):
        if line.speaker == NARRATOR:
            action.append(f"(Narration: {line.text})")
        else:
            action.append(f'{bible.character(line.speaker).name} speaks: "{line.text}"')
    return f"{scene} {' '.join(action)}" if action else scene


# --- frames ---------------------------------------------------------------------------------------


def model_size(profile: RenderProfile, family: ModelFamily) -> tuple[int, int]:
    """The profile's width and height rounded up to what the model generates."""
    step = family.size_multiple
    return math.ceil(profile.width / step) * step, math.ceil(profile.height / step) * step


def frame_counts(total: int, segment_frames: int, step: int) -> list[int]:
    """Frames to request per pipeline call to cover ``total`` output frames. Each count is ``step * k + 1``,
    at most ``segment_frames``; every segment after the first starts on its conditioning frame, which is
    not shown twice, so it adds one frame less than it generates."""
    largest = (segment_frames - 1) // step * step + 1
    if largest < step + 1:
        raise RenderError(f"segment_frames={segment_frames} is too short for this model: use at least {step + 1}")
    counts: list[int] = []
    covered = 0
    while covered < total:
        wanted = total - covered + (1 if counts else 0)
        count = min(largest, math.ceil(max(wanted - 1, 0) / step) * step + 1)
        counts.append(count)
        covered += count - (1 if len(counts) > 1 else 0)
    return counts


def pad_to(frame: Frame, width: int, height: int) -> Frame:
    """Grow a frame to the model's size by repeating its edges, centred: the inverse of :func:`crop_to`."""
    top, left = (height - frame.shape[0]) // 2, (width - frame.shape[1]) // 2
    bottom, right = height - frame.shape[0] - top, width - frame.shape[1] - left
    padded: Frame = np.pad(frame, ((top, bottom), (left, right), (0, 0)), mode="edge")
    return padded


def crop_to(frame: Frame, width: int, height: int) -> Frame:
    """The centre ``width x height`` of a frame."""
    top, left = (frame.shape[0] - height) // 2, (frame.shape[1] - width) // 2
    return frame[top : top + height, left : left + width]


def to_frames(decoded: Any, width: int, height: int) -> list[Frame]:
    """The pipeline's float frames in [0, 1] (``frames x h x w x 3``) as 8-bit RGB at the profile's size."""
    pixels = np.clip(np.asarray(decoded, dtype=np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(crop_to(frame, width, height)) for frame in pixels]


def load_image(path: Path, what: str) -> Image.Image:
    """A reference image, decoded; a missing or broken one is an error (a clip must not silently lose its cast)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise RenderError(f"cannot read the {what} reference {path}: {error}") from error


def opening_frame(plate: Image.Image | None, portraits: list[Image.Image], width: int, height: int) -> Frame:
    """The plate fitted to ``width x height`` with up to two portraits standing in it, bottom-aligned side by
    side, their plain backgrounds feathered away: the frame a clip opens on."""
    if plate is None:
        canvas = Image.new("RGB", (width, height), (128, 128, 128))
    else:
        canvas = ImageOps.fit(plate, (width, height), Image.Resampling.BILINEAR)
    shown = portraits[:2]
    for index, portrait in enumerate(shown):
        box_width = min(round(height * 0.62 * 9 / 16), width // len(shown))
        box_height = min(height, round(box_width * 16 / 9))
        figure = ImageOps.fit(portrait, (box_width, box_height), Image.Resampling.BILINEAR)
        mask = Image.new("L", (box_width, box_height), 0)
        oval = (box_width * 0.08, box_height * 0.04, box_width * 0.92, box_height * 1.3)
        ImageDraw.Draw(mask).ellipse(oval, fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, box_width // 16)))
        left = round((index + 0.5) * width / len(shown) - box_width / 2)
        canvas.paste(figure, (left, height - box_height), mask)
    return np.asarray(canvas, dtype=np.uint8)


@dataclass(frozen=True)
class Cast:
    """The references of one render, decoded: the opening frame and each character's portrait."""

    opening: Frame
    portraits: dict[str, Image.Image]


def load_cast(references: References, characters: list[Character], width: int, height: int) -> Cast | None:
    """The request's references as images; None when it has none. A portrait for a character who is not in the
    shot is ignored; a character in the shot without one is drawn from the text alone."""
    if not references:
        return None
    plate = None if references.plate is None else load_image(references.plate, "plate")
    portraits = {
        c.id: load_image(references.portraits[c.id], f"{c.id!r} portrait")
        for c in characters
        if c.id in references.portraits
    }
    return Cast(opening_frame(plate, list(portraits.values()), width, height), portraits)


class Captions:
    """The subtitle page on screen at any time, drawn once per page (as the animatic's are)."""

    def __init__(self, track: Soundtrack, bible: Bible, profile: RenderProfile, burned: bool = True) -> None:
        self.track = track
        self.burned = burned
        self.bible = bible
        self.profile = profile
        self.pages: dict[str, tuple[list[Subtitle], list[float]]] = {}

    def at(self, t: float) -> Overlay | None:
        spoken = self.track.line_at(t) if self.burned else None
        if spoken is None:
            return None
        if spoken.line.id not in self.pages:
            pages = subtitle_pages(spoken.line, self.bible, self.profile)
            self.pages[spoken.line.id] = (pages, page_ends(pages))
        pages, ends = self.pages[spoken.line.id]
        progress = (t * self.track.sample_rate - spoken.start) / max(len(spoken.samples), 1)
        return next((page for page, end in zip(pages, ends, strict=True) if progress < end), pages[-1]).overlay


# --- the renderer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    index: int
    frames: int
    """Frames the pipeline generates."""
    prompt: str
    speakers: tuple[str, ...] = ()
    """The characters who speak during the segment, by ID."""


class DiffusionRenderer:
    """Generated footage from a local LTX-Video or Wan model folder; conditioned clip to clip."""

    def __init__(
        self,
        model_dir: Path,
        synthesizer: Synthesizer | None = None,
        threads: int = 1,
        producer: str = PRODUCER,
        badge_seconds: float = BADGE_SECONDS,
        signer: FileSigner | None = None,
        guidance_scale: float = 3.0,
        conditioning_strength: float = 1.0,
        reference_strength: float = 0.5,
    ) -> None:
        self.model_dir = model_dir
        self.family = check_model_folder(model_dir)
        self.synthesizer = synthesizer or EspeakSynthesizer()
        self.threads = threads
        self.producer = producer
        self.badge_seconds = badge_seconds
        self.signer = signer
        self.guidance_scale = guidance_scale
        self.conditioning_strength = conditioning_strength
        self.reference_strength = reference_strength
        """LTX only: how strongly a speaker's portrait pulls the segment's last frame towards it (0: not at all)."""
        self.pipelines: dict[tuple[str, str], Any] = {}
        self.last_conditioning: list[Image.Image | None] = []
        """The conditioning image passed to the pipeline for each segment of the last render (None: text only)."""
        self.last_references: list[list[Image.Image]] = []
        """The portraits passed to the pipeline for each segment of the last render (LTX keyframes)."""

    def render(self, request: RenderRequest) -> RenderedClip:
        return self.render_measured(request)[0]

    def render_measured(self, request: RenderRequest) -> tuple[RenderedClip, dict[str, float]]:
        """Render, and say where the time went: voice, load, generate, draw, encode, labels, sign (C2PA)."""
        watch = Stopwatch()
        scene, bible, profile = request.scene, request.bible, request.profile
        if profile.steps < 1:
            raise RenderError(f"profile {profile.name!r} has steps=0: a diffusion profile needs denoising steps")
        characters = speaking_characters(scene, bible)
        previous = load_previous_frame(request.previous_frame, profile.width, profile.height)
        cast = load_cast(request.references, characters, profile.width, profile.height)
        with watch.measure("load"):
            pipeline = self.pipeline(profile)
        with watch.measure("voice"):
            synthesizer = self.synthesizer if request.voice else Silence()
            track = soundtrack(scene, bible, request.language, synthesizer, line_seconds=request.line_seconds)
        with watch.measure("labels"):
            label = aigc_label(produce_id(request, previous if cast is None else cast.opening), producer=self.producer)
            mark = badge(profile.width)
        captions = Captions(track, bible, profile, burned=request.captions)
        total = math.ceil(track.duration * profile.fps)
        seed = int(label.ProduceID[:8], 16)
        self.last_conditioning, self.last_references = [], []
        with watch.measure("encode"):
            encoder = labelled_encoder(request, label, self.threads, self.signer)
        with encoder:
            encoder.add_audio(track.samples())
            if cast is not None:
                conditioning: Frame | None = cast.opening
            else:
                conditioning = previous if previous is not None else self.opening(scene, profile)
            clean = conditioning
            for segment in self.segments(scene, bible, characters, track, total, profile.fps, profile.segment_frames):
                portraits = [] if cast is None else segment_portraits(segment, characters, cast)
                with watch.measure("generate"):
                    footage = self.generate(pipeline, segment, conditioning, portraits, profile, seed + segment.index)
                # A later segment's first frame is its conditioning frame, already shown.
                for frame in (footage[1:] if segment.index else footage)[: total - encoder.frames]:
                    picture = self.dress(frame, encoder.frames / profile.fps, captions, mark, watch)
                    with watch.measure("encode"):
                        encoder.write_frame(picture)
                    clean = frame
                conditioning = footage[-1]
            assert clean is not None
            finish(encoder, clean, watch)
        with watch.measure("encode"):
            clip = finished_clip(request, track.timings())
        return clip, dict(watch.seconds)

    def dress(self, frame: Frame, t: float, captions: Captions, mark: Overlay, watch: Stopwatch) -> Picture:
        """The frame at ``t`` as the encoder takes it, with the subtitle and, early on, the AI mark."""
        with watch.measure("draw"):
            picture = rgb_to_yuv420(frame)
            subtitle = captions.at(t)
            if subtitle is not None:
                subtitle.apply(picture)
        if t < self.badge_seconds:
            with watch.measure("labels"):
                mark.apply(picture)
        return picture

    def segments(
        self,
        scene: Scene,
        bible: Bible,
        characters: list[Character],
        track: Soundtrack,
        total: int,
        fps: int,
        segment_frames: int,
    ) -> Iterator[Segment]:
        """The pipeline calls that cover ``total`` frames, each prompted with the lines spoken during it."""
        base = scene_prompt(scene, bible, characters)
        start = 0
        for index, count in enumerate(frame_counts(total, segment_frames, self.family.frame_step)):
            shown = count - (1 if index else 0)
            begin, end = start * track.sample_rate / fps, (start + shown) * track.sample_rate / fps
            spoken = [line for line in track.lines if line.start < end and line.end > begin]
            speakers = tuple(dict.fromkeys(line.line.speaker for line in spoken if line.line.speaker != NARRATOR))
            yield Segment(index=index, frames=count, prompt=shot_prompt(base, spoken, bible), speakers=speakers)
            start += shown

    def generate(
        self,
        pipeline: Any,
        segment: Segment,
        conditioning: Frame | None,
        portraits: list[Image.Image],
        profile: RenderProfile,
        seed: int,
    ) -> list[Frame]:
        """One pipeline call: ``segment.frames`` frames at the profile's size, starting from ``conditioning``,
        with ``portraits`` as soft keyframes on its last frame (LTX)."""
        import torch

        width, height = model_size(profile, self.family)
        image = None if conditioning is None else Image.fromarray(pad_to(conditioning, width, height))
        self.last_conditioning.append(image)
        held = portraits if self.family is LTX else []
        references = [pad_image(portrait, profile, width, height) for portrait in held]
        self.last_references.append(references)
        arguments: dict[str, Any] = {
            "prompt": segment.prompt,
            "negative_prompt": NEGATIVE_PROMPT,
            "width": width,
            "height": height,
            "num_frames": segment.frames,
            "num_inference_steps": profile.steps,
            "guidance_scale": self.guidance_scale,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "output_type": "np",
        }
        if self.family is LTX:
            from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

            strength = self.conditioning_strength
            items = [] if image is None else [LTXVideoCondition(image=image, frame_index=0, strength=strength)]
            if self.reference_strength > 0:
                items += [
                    LTXVideoCondition(image=reference, frame_index=segment.frames - 1, strength=self.reference_strength)
                    for reference in references
                ]
            arguments |= {"conditions": items or None, "frame_rate": profile.fps}
        else:
            arguments |= {"image": image}
        try:
            with torch.inference_mode():
                decoded = pipeline(**arguments).frames[0]
        except (RuntimeError, ValueError) as error:
            raise RenderError(f"{self.family.pipeline} failed on segment {segment.index}: {error}") from error
        return to_frames(decoded, profile.width, profile.height)

    def pipeline(self, profile: RenderProfile) -> Any:
        """The loaded pipeline for the profile's device and dtype; loaded once, from disk only."""
        device, dtype = resolve_device(profile.device), profile.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        key = (device, dtype)
        if key not in self.pipelines:
            self.pipelines[key] = self.load(device, dtype)
        return self.pipelines[key]

    def load(self, device: str, dtype: str) -> Any:
        try:
            import diffusers
            import torch
        except ImportError as error:
            raise RenderError(
                "the diffusion renderer needs torch and diffusers: pip install -e '.[diffusion]'"
            ) from error
        torch.set_num_threads(self.threads)
        check_model_folder(self.model_dir)  # again: the folder may have changed since start-up
        pipeline_class = getattr(diffusers, self.family.pipeline)
        try:
            pipeline = pipeline_class.from_pretrained(
                self.model_dir, dtype=getattr(torch, dtype), local_files_only=True
            )
        except (OSError, ValueError, RuntimeError) as error:
            raise RenderError(f"cannot load {self.family.pipeline} from {self.model_dir}: {error}") from error
        pipeline.set_progress_bar_config(disable=True)
        log.info("loaded %s from %s on %s (%s)", self.family.pipeline, self.model_dir, device, dtype)
        return pipeline.to(device)

    def opening(self, scene: Scene, profile: RenderProfile) -> Frame | None:
        """What the first clip of a story starts from: nothing for LTX (text to video), which can;
        the scene's backdrop for Wan, whose image-to-video pipeline needs a first frame."""
        if self.family is LTX:
            return None
        image = backdrop(scene.place, scene.mood, (profile.width, profile.height)).convert("RGB")
        return np.asarray(image, dtype=np.uint8)


def segment_portraits(segment: Segment, characters: list[Character], cast: Cast) -> list[Image.Image]:
    """The portraits a segment is held to: its speakers', or, when nobody in the shot speaks in it, the
    first two characters' (those in the opening frame)."""
    wanted = [c for c in characters if c.id in segment.speakers] or characters[:2]
    return [cast.portraits[c.id] for c in wanted if c.id in cast.portraits]


def pad_image(image: Image.Image, profile: RenderProfile, width: int, height: int) -> Image.Image:
    """A reference fitted to the profile's frame and grown to the model's size, as a frame is."""
    fitted = ImageOps.fit(image, (profile.width, profile.height), Image.Resampling.BILINEAR)
    return Image.fromarray(pad_to(np.asarray(fitted, dtype=np.uint8), width, height))


def resolve_device(name: str) -> str:
    """``auto``: the first GPU when torch sees one, else the CPU. A GPU that is asked for must exist."""
    import torch

    available = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if available else "cpu"
    if name.startswith("cuda") and not available:
        raise RenderError(f"the render profile asks for device {name!r} but torch sees no GPU; use 'auto' or 'cpu'")
    return name
