"""Synthetic training caches for the tiny checkpoints, and settings for quick CPU runs."""

from __future__ import annotations

import torch

from nova_core.training.cache import CacheWriter
from nova_core.training.config import load_config
from nova_core.training.encode import checkpoint_geometry, checkpoint_header
from tests.conftest import TINY_T2V

CAPTIONS = ["a red car on a mountain road", "fireworks over the city", "a dog running on the beach",
            "green hills under a blue sky"]


def make_cache(folder, checkpoint=TINY_T2V, num_items=4, latent_frames=3, text=False, seed=0, shard_size=2):
    """``num_items`` clips whose latent frames are one random pattern shifted sideways frame by
    frame (a camera pan), with near-zero posterior variance; optionally cached Phi rows."""
    geo = checkpoint_geometry(checkpoint)
    settings = {"frames": 1 + 4 * (latent_frames - 1), "stride": 1, "text_embeddings": text}
    writer = CacheWriter(folder, checkpoint_header(str(checkpoint), checkpoint, settings), shard_size)
    g = torch.Generator().manual_seed(seed)
    for i in range(num_items):
        base = torch.randn(geo.latent_channels, 1, *geo.latent_size, generator=g) * 5
        mean = torch.cat([base.roll(t, dims=-1) for t in range(latent_frames)], dim=1)
        tensors = {"mean": mean, "logvar": torch.full_like(mean, -10.0)}
        if text:
            tensors["text"] = torch.randn(3 + i, geo.text_token_dim, generator=g).half()
        writer.add({"source": f"clip{i}.mp4", "kind": "video" if latent_frames > 1 else "image",
                    "caption": CAPTIONS[i % len(CAPTIONS)], "motion_flow": float(i + 1),
                    "latent_frames": latent_frames, "frames": settings["frames"], "stride": 1, "fps": 12.0},
                   tensors)
    writer.flush()
    return folder


def train_config(cache, output, checkpoint=TINY_T2V, **settings):
    """Settings for a tiny CPU run: batch 4, no warm-up unless asked, EMA off unless asked."""
    overrides = {"model.checkpoint": str(checkpoint), "data.cache": str(cache), "train.output_dir": str(output),
                 "train.batch_size": 4, "train.steps": 4, "optim.lr": 1e-3, "optim.warmup_steps": 0,
                 "ema.decay": 0.0, "log.every": 1, "log.save_every": 1000}
    overrides.update(settings)
    return load_config(None, overrides)
