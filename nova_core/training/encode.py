"""What ``nova prepare`` computes per item, and the cache header that says what it belongs to.

Only the VAE (and, for cached text embeddings, the tokenizer and Phi) of a checkpoint is loaded:
the transformer's config gives the frame size and text length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import loading
from ..config import Geometry
from ..loading import checkpoint_geometry


def cache_header(name: str, vae_class: str, vae_config: dict, geo: Geometry, settings: dict) -> dict:
    """Identifies an encoding: a cache only ever holds items encoded the same way, and training
    checks it against the checkpoint it trains."""
    return {
        "checkpoint": {
            "name": name, "vae": vae_class, "scaling_factor": vae_config["scaling_factor"],
            "shift_factor": vae_config.get("shift_factor"), "latent_channels": geo.latent_channels,
            "latent_size": list(geo.latent_size), "pixel_size": list(geo.pixel_size),
            "text_token_len": geo.text_token_len, "text_token_dim": geo.text_token_dim,
        },
        "settings": settings,
    }


def checkpoint_header(name: str, folder: Path, settings: dict) -> dict:
    """:func:`cache_header` from a checkpoint folder's config files alone."""
    vae_class = loading.class_name(loading.read_model_index(folder), "vae")
    vae_config = loading.read_vae_config(folder, vae_class)
    return cache_header(name, vae_class, vae_config, checkpoint_geometry(folder), settings)


@dataclass
class Encoder:
    """The pieces of a checkpoint that turn media into cache entries."""

    name: str
    geometry: Geometry
    vae: object
    vae_class: str
    tokenizer: object = None
    text_encoder: object = None

    @classmethod
    def load(cls, name: str, folder: Path, device, text_embeddings: bool) -> "Encoder":
        index = loading.read_model_index(folder)
        vae_class = loading.class_name(index, "vae")
        dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        vae = loading.load_vae(folder, vae_class, dtype).to(device)
        tokenizer = text_encoder = None
        if text_embeddings:
            tokenizer = loading.load_tokenizer(folder)
            text_encoder = loading.load_text_encoder(folder, dtype).to(device)
        return cls(name, checkpoint_geometry(folder), vae, vae_class, tokenizer, text_encoder)

    @property
    def is_video(self) -> bool:
        return self.vae_class == "AutoencoderKLOpenSora"

    def header(self, settings: dict) -> dict:
        return cache_header(self.name, self.vae_class, dict(self.vae.config), self.geometry, settings)

    @torch.no_grad()
    def moments(self, frames: np.ndarray) -> dict[str, torch.Tensor]:
        """uint8 frames (T, H, W, 3) at the model's size -> mean, logvar (C, T', h, w) float32."""
        from ..pipeline import vae_input

        x = vae_input(frames, self.vae)  # (1, 3, T, H, W)
        if not self.is_video:
            x = x[:, :, 0]
        dist = self.vae.encode(x).latent_dist
        mean, logvar = dist.mean.float(), dist.logvar.float()
        if mean.dim() == 4:  # 2D VAE: one frame
            mean, logvar = mean.unsqueeze(2), logvar.unsqueeze(2)
        return {"mean": mean[0].cpu(), "logvar": logvar[0].cpu()}

    @torch.no_grad()
    def caption_rows(self, caption: str) -> torch.Tensor:
        """The caption's Phi rows before padding: (len, text_dim) float16."""
        from ..text import encode_prompts

        hidden, lengths = encode_prompts(self.tokenizer, self.text_encoder, [caption], self.geometry.text_token_len)
        return hidden[0, : lengths[0]].to(torch.float16).cpu()
