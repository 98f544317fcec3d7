"""Which renderer draws a profile: the animatic for the ``animatic`` tier, diffusion for ``full`` and ``fast``."""

from __future__ import annotations

from pathlib import Path

from reelfork.generation.render.animatic import AnimaticRenderer
from reelfork.generation.render.diffusion import DiffusionRenderer
from reelfork.generation.render.encoding import FileSigner
from reelfork.generation.render.profiles import RenderProfile
from reelfork.generation.render.request import Renderer, RenderError


def renderer_for(
    profile: RenderProfile, *, model_dir: Path | None, signer: FileSigner | None, threads: int = 1
) -> Renderer:
    """A renderer for ``profile``'s tier. Diffusion tiers need ``model_dir``, a local diffusers pipeline
    folder; torch and diffusers are imported only then, so animatic-only hosts need neither."""
    if profile.tier == "animatic":
        return AnimaticRenderer(threads=threads, signer=signer)
    if model_dir is None:
        raise RenderError(
            f"render profile {profile.name!r} is the diffusion tier {profile.tier!r}, which needs a model folder "
            f"(REELFORK_RENDER_MODEL_DIR); set one, or choose an animatic profile"
        )
    return DiffusionRenderer(model_dir, threads=threads, signer=signer)
