"""Conditioning and position embeddings: text, motion flow, time, space, BOV and mask tokens.

Sinusoid tables are computed in float32 on the CPU (as the reference does) and only then cast,
so every dtype and device starts from the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn


def inverse_frequencies(n: int) -> torch.Tensor:
    """f_k = 1 / 10000^(k/n), k < n."""
    return 1 / (10000 ** (torch.arange(n, dtype=torch.float32) / n))


def sincos(values: torch.Tensor, n: int = 128) -> torch.Tensor:
    """[sin(v f), cos(v f)] for every value: (..., ) -> (..., 1, 2n)."""
    angles = values.float().reshape(-1, 1, 1) * inverse_frequencies(n).unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def space_embedding(h: int, w: int, dim: int) -> torch.Tensor:
    """2-D sincos table (h*w, dim), row-major; per token [sin(c f), cos(c f), sin(r f), cos(r f)]."""
    freq = inverse_frequencies(dim // 4).unsqueeze(0)
    cols = torch.arange(w, dtype=torch.float32).repeat(h).view(-1, 1) * freq
    rows = torch.arange(h, dtype=torch.float32).repeat_interleave(w).view(-1, 1) * freq
    return torch.cat([cols.sin(), cols.cos(), rows.sin(), rows.cos()], dim=-1)


def projector(dim_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim), nn.SiLU(), nn.Linear(dim, dim))


class TextEmbed(nn.Module):
    """Phi hidden states -> prompt tokens. Padding positions use learned rows, not Phi's output."""

    def __init__(self, token_dim: int, dim: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.proj, self.norm = nn.Linear(token_dim, dim), nn.LayerNorm(dim)
        self.register_buffer("weight", torch.zeros(512, token_dim))  # learned padding rows

    def pad(self, hidden: torch.Tensor, lengths) -> torch.Tensor:
        """Keep the first ``len`` Phi rows of each prompt, fill the rest from ``weight``."""
        x = self.weight[: self.num_tokens].expand(hidden.size(0), -1, -1).clone()
        for i, n in enumerate(lengths):
            x[i, :n] = hidden[i, :n].to(x)
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(tokens))


class MotionEmbed(nn.Module):
    """Two prefix tokens for video checkpoints: the motion-flow value and the frame rate."""

    base_fps = 12  # the reference never passes fps, so its token always encodes 12

    def __init__(self, dim: int):
        super().__init__()
        self.flow_proj = projector(256, dim)
        self.fps_proj = projector(256, dim)

    def forward(self, flow: torch.Tensor, fps: torch.Tensor | None = None) -> torch.Tensor:
        """flow, fps: (N,) values -> (N, 2, dim)."""
        fps = torch.full_like(flow, self.base_fps, dtype=torch.float32) if fps is None else fps
        dtype, device = self.flow_proj[0].weight.dtype, self.flow_proj[0].weight.device
        tokens = [proj(sincos(v).to(device, dtype)) for proj, v in ((self.flow_proj, flow), (self.fps_proj, fps))]
        return torch.cat(tokens, dim=1)


class VideoPosEmbed(nn.Module):
    """Frame-index embedding of the temporal encoder (+ its fixed 2-D space table)."""

    def __init__(self, dim: int, base_size: tuple[int, int, int]):
        super().__init__()
        self.base_size = tuple(base_size)
        self.time_proj = projector(256, dim)
        self.norm = nn.LayerNorm(dim)

    def time_embedding(self, num_frames: int) -> torch.Tensor:
        """(T, 1, dim). Positions are t * base_t / T, so they depend on the total length T."""
        position = torch.arange(num_frames, dtype=torch.float32) / (num_frames / self.base_size[0])
        w = self.time_proj[0].weight
        return self.norm(self.time_proj(sincos(position).to(w.device, w.dtype)))

    def space_embedding(self) -> torch.Tensor:
        return space_embedding(self.base_size[1], self.base_size[2], self.norm.normalized_shape[0])


class MaskEmbed(nn.Module):
    """The two learned tokens: BOV (every token of frame 0) and MASK (tokens not yet revealed)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bos_token = nn.Parameter(torch.zeros(1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        nn.init.normal_(self.bos_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
