"""The per-token diffusion head: a small MLP that denoises each token given the encoder output z.

Only the tokens of the current set are computed; the rows of all other tokens are returned as
the noisy input patches, so a scheduler can still step the whole canvas.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import MLP
from .patches import PatchEmbed


def timestep_embedding(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """[cos(t f), sin(t f)] with f_k = exp(-ln(10000) k / (dim/2)); t in scheduler units (0..1000)."""
    half = dim // 2
    freq = torch.arange(half, dtype=torch.float32, device=t.device).mul(-math.log(10000) / half).exp()
    angles = t.unsqueeze(-1).float() * freq.unsqueeze(0)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class AdaLayerNorm(nn.Module):
    """LayerNorm (no affine) modulated by the condition: LN(x) * (1 + a) + b, plus extra stats."""

    def __init__(self, dim: int, num_stats: int):
        super().__init__()
        self.num_stats = num_stats
        self.activation = nn.SiLU()
        self.proj = nn.Linear(dim, num_stats * dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)

    def forward(self, x, cond):
        stats = self.proj(self.activation(cond)).chunk(self.num_stats, dim=-1)
        return self.norm(x) * (1 + stats[0]) + stats[1], stats[2:]


class TimeCondEmbed(nn.Module):
    """z' = MLP(z) + MLP(timestep embedding)."""

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.timestep_proj = MLP(256, dim, dim, act=nn.SiLU)
        self.condition_proj = MLP(cond_dim, dim, dim, act=nn.SiLU)

    def forward(self, timestep, z):
        t = self.timestep_proj(timestep_embedding(timestep).to(z.dtype))
        return self.condition_proj(z) + t.unsqueeze(1)


class DiffusionBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm1 = AdaLayerNorm(dim, num_stats=3)
        self.proj = MLP(dim, dim, dim, act=nn.SiLU)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x, cond):
        h, (gate,) = self.norm1(x, cond)
        return self.norm2(self.proj(h)) * gate + x


class DiffusionHead(nn.Module):
    def __init__(self, depth: int, dim: int, cond_dim: int, patch_size: int, channels: int):
        super().__init__()
        self.patch_embed = PatchEmbed(channels, dim, patch_size)
        self.time_cond_embed = TimeCondEmbed(cond_dim, dim)
        self.blocks = nn.ModuleList(DiffusionBlock(dim) for _ in range(depth))
        self.norm = AdaLayerNorm(dim, num_stats=2)
        self.head = nn.Linear(dim, patch_size**2 * channels)

    def forward(self, x, timestep, z, ids=None) -> torch.Tensor:
        """x: noisy canvas (B, C, h, w); timestep: (B,); z: (B, N, D); ids: (B, k, 1) tokens to predict.

        Returns (B, N, p*p*C): predictions at ``ids``, the noisy input patches elsewhere.
        """
        tokens = self.patch_embed(x)
        if ids is not None:
            tokens = tokens.gather(1, ids.expand(-1, -1, tokens.size(-1)))
            z = z.gather(1, ids.expand(-1, -1, z.size(-1)))
        out = self.denoise_tokens(tokens, timestep, z)
        if ids is None:
            return out
        return self.patch_embed.patchify(x).scatter(1, ids.expand(-1, -1, out.size(-1)), out)

    def forward_patches(self, patches, timestep, z) -> torch.Tensor:
        """Same function on already patchified noisy tokens (B, k, p*p*C) and their z (B, k, D).

        The patch embedding becomes a matmul with the conv's weight (equal up to summation order),
        so the fast path never touches the tokens it does not predict.
        """
        return self.denoise_tokens(self.patch_embed.embed_patches(patches), timestep, z)

    def denoise_tokens(self, tokens, timestep, z) -> torch.Tensor:
        cond = self.time_cond_embed(timestep, z)
        for blk in self.blocks:
            tokens = blk(tokens, cond)
        return self.head(self.norm(tokens, cond)[0])
