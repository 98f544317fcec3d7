"""A tiny random-weight LTX-Video pipeline, built and saved like a real model folder (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reelfork.generation.render.profiles import RenderProfile

TINY = RenderProfile(
    name="tiny", width=144, height=256, fps=8, tier="fast", steps=2, segment_frames=17, device="cpu", dtype="float32"
)
"""Generated at 160x256 (multiples of 32) and cropped to 9:16; 17 frames (~2 s) per pipeline call."""


def build_tiny_ltx(folder: Path) -> None:
    """A random-weight ``LTXConditionPipeline`` with LTX-Video's compression (32x spatial, 8x temporal)
    in ~150k parameters. Every ``decoder_*`` VAE argument is given: left out, the decoder silently
    takes a 237M-parameter default. The T5 tokenizer is made from a word list, with no download."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    transformer = diffusers.LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    scaling = (True, True, True, False)
    vae = diffusers.AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=scaling,
        decoder_spatio_temporal_scaling=scaling,
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    words = "a the of in rain rooftop night garden mei lin jun red jacket coat says narration vertical cinematic"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [
        (f"▁{w}", -float(i)) for i, w in enumerate(words.split())
    ]
    tokenizer = transformers.T5Tokenizer(vocab=vocab, extra_ids=0)
    config = transformers.T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4, relative_attention_num_buckets=8
    )
    pipeline = diffusers.LTXConditionPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        text_encoder=transformers.T5EncoderModel(config),
        tokenizer=tokenizer,
    )
    pipeline.save_pretrained(folder)
