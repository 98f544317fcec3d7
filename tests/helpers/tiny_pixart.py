"""A tiny random-weight text-to-image pipeline (PixArt-Sigma), built and saved like a real model folder."""

from __future__ import annotations

from pathlib import Path

import pytest


def build_tiny_pixart(folder: Path) -> None:
    """A random-weight ``PixArtSigmaPipeline`` in ~50k parameters: a one-layer transformer over a five-block
    VAE (16x compression, so even a full-size 576x1024 reference is 576 tokens), and a T5 encoder whose
    tokenizer is made from a word list, with no download."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    transformer = diffusers.PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        norm_num_groups=4,
        cross_attention_dim=16,
        sample_size=8,
        patch_size=2,
        caption_channels=32,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 5,
        up_block_types=("UpDecoderBlock2D",) * 5,
        block_out_channels=(8, 8, 8, 8, 8),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    words = "a the of portrait person hair skin build wearing coat jacket shot place mood rooftop rain night"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [
        (f"▁{w}", -float(i)) for i, w in enumerate(words.split())
    ]
    tokenizer = transformers.T5Tokenizer(vocab=vocab, extra_ids=0)
    config = transformers.T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4, relative_attention_num_buckets=8
    )
    pipeline = diffusers.PixArtSigmaPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=diffusers.DPMSolverMultistepScheduler(),
        text_encoder=transformers.T5EncoderModel(config),
        tokenizer=tokenizer,
    )
    pipeline.save_pretrained(folder)
