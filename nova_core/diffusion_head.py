"""The per-token diffusion head: a small MLP that denoises each token given the encoder output z.

Only the tokens of the current set are computed; the rows of all other tokens are returned as
the noisy input patches, so a scheduler can still step the whole canvas. :class:`FusedHead` is
the same function in the form sampling runs thousands of times per call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import MLP, run_blocks
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
        """timestep: (B,) one per row, or (B, N) one per token (training noises tokens independently)."""
        t = self.timestep_proj(timestep_embedding(timestep).to(z.dtype))
        return self.condition_proj(z) + (t if timestep.dim() == 2 else t.unsqueeze(1))


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
        self.gradient_checkpointing = False  # training opt-in, see layers.run_blocks

    def forward(self, x, timestep, z, ids=None) -> torch.Tensor:
        """x: noisy canvas (B, C, h, w); timestep: (B,) or (B, N) per token (only without ``ids``);
        z: (B, N, D); ids: (B, k, 1) tokens to predict.

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

    def denoise_tokens(self, tokens, timestep, z) -> torch.Tensor:
        cond = self.time_cond_embed(timestep, z)
        tokens = run_blocks(self.blocks, tokens, cond, checkpointing=self.gradient_checkpointing)
        return self.head(self.norm(tokens, cond)[0])


class FusedHead:
    """:meth:`DiffusionHead.denoise_tokens` for sampling: the same function in fewer, larger ops.

    A call runs the tiny head sets x diffusion steps times, so on the CPU its cost is per-op
    overhead, not arithmetic. What a call fixes is computed once: the timestep branch for each of
    the scheduler's S timesteps (``time_cond``) and the weights, pre-transposed for ``addmm``;
    per set, the condition branch of z (:meth:`condition`). A step then makes every adaLN
    projection (the blocks' scale/shift/gate and the final norm's) in one matmul, scales first so
    that one in-place add makes all the ``1 + scale``; the rest works in place. The elementwise ops
    are the module's, in its order (no fused multiply-adds), so only matmul sizes differ: float32
    results on the CPU have come out bit-identical to the module's.
    """

    def __init__(self, head: DiffusionHead, timesteps: torch.Tensor):
        weight = head.head.weight
        self.dim = dim = weight.size(1)
        ada = [blk.norm1 for blk in head.blocks] + [head.norm]
        chunks = [(norm.proj.weight.split(dim), norm.proj.bias.split(dim)) for norm in ada]
        scales = [(w[0], b[0]) for w, b in chunks]
        rest = [(w[s], b[s]) for w, b in chunks for s in range(1, len(w))]
        self.ada = (torch.cat([b for _, b in scales + rest]), torch.cat([w for w, _ in scales + rest]).t())
        self.num_scales, self.sizes = len(scales) * dim, [dim] * len(scales + rest)
        self.eps = [norm.norm.eps for norm in ada]
        self.mlps = [(blk.proj.fc1.bias, blk.proj.fc1.weight.t(), blk.proj.fc2.bias, blk.proj.fc2.weight.t(),
                      blk.norm2.weight, blk.norm2.bias, blk.norm2.eps) for blk in head.blocks]
        self.embed = (head.patch_embed.proj.bias, head.patch_embed.patch_weight().t())
        self.out = (head.head.bias, weight.t())
        self.condition_proj = head.time_cond_embed.condition_proj
        t = timesteps.to(weight.device)
        self.time_cond = head.time_cond_embed.timestep_proj(timestep_embedding(t).to(weight.dtype))  # (S, D)

    def condition(self, z: torch.Tensor) -> torch.Tensor:
        """z (rows, k, D_z) -> the condition branch (rows * k, D), fixed over a set's steps."""
        return self.condition_proj(z).flatten(0, 1)

    def __call__(self, patches: torch.Tensor, step: int, cond: torch.Tensor) -> torch.Tensor:
        """patches (M, p*p*C) noisy tokens at scheduler step ``step``; cond (M, D) from :meth:`condition`."""
        dim, eps, depth = (self.dim,), self.eps, len(self.mlps)
        stats = torch.addmm(self.ada[0], F.silu(cond + self.time_cond[step], inplace=True), self.ada[1])
        stats.narrow(1, 0, self.num_scales).add_(1)
        stats = stats.split_with_sizes(self.sizes, 1)  # 1 + scale per adaLN, (shift, gate) per block, shift
        x = torch.addmm(self.embed[0], patches, self.embed[1])
        for i, (b1, w1, b2, w2, norm_w, norm_b, norm_eps) in enumerate(self.mlps):
            shift, gate = stats[depth + 1 + 2 * i : depth + 3 + 2 * i]
            h = torch.layer_norm(x, dim, None, None, eps[i]).mul_(stats[i]).add_(shift)
            h = torch.addmm(b2, F.silu(torch.addmm(b1, h, w1), inplace=True), w2)
            x = torch.layer_norm(h, dim, norm_w, norm_b, norm_eps).mul_(gate).add_(x)
        h = torch.layer_norm(x, dim, None, None, eps[-1]).mul_(stats[depth]).add_(stats[-1])
        return torch.addmm(self.out[0], h, self.out[1])
