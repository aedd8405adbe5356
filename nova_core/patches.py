"""Latent frame <-> tokens.

Tokens run row-major over the (h/p, w/p) grid; a token's p*p*C values are ordered
(row in patch, column in patch, channel), channel fastest.
"""

from __future__ import annotations

import torch
from torch import nn


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p*p*C)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, p: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, p*p*C) -> (B, C, h*p, w*p) for a token grid ``size`` = (h, w)."""
    b, (h, w) = x.size(0), size
    x = x.reshape(b, h, w, p, p, -1).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, -1, h * p, w * p)


class PatchEmbed(nn.Module):
    """Conv with kernel = stride = patch: (B, C, H, W) -> (B, N, D)."""

    def __init__(self, channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(channels, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        return patchify(x, self.patch_size)

    def patch_weight(self) -> torch.Tensor:
        """The conv's weight as a (D, p*p*C) matrix in patch order."""
        return self.proj.weight.permute(0, 2, 3, 1).flatten(1)

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, k, p*p*C) patches -> (B, k, D): the conv as a matmul."""
        return torch.nn.functional.linear(patches, self.patch_weight(), self.proj.bias)
