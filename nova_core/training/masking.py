"""Which tokens of a training frame are hidden: MAR-style masking with a random ratio and order.

Each frame row draws its own mask ratio from a normal around 1.0 truncated to [low, high]
(the paper's [0.7, 1.0], spread 0.25), and a random token order; the first
``round((1 - ratio) * N)`` tokens of the order are visible ("known"), the rest are masked and
carry the loss. This mirrors generation, where a frame starts fully masked and is revealed set
by set in a random order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def truncated_normal(generator, n: int, low: float, high: float, std: float, loc: float = 1.0):
    """n draws of N(loc, std) restricted to [low, high], by inverting the normal CDF."""
    a = torch.special.ndtr(torch.tensor((low - loc) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - loc) / std, dtype=torch.float64))
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    x = loc + std * torch.special.ndtri(a + (b - a) * u)
    return x.clamp(low, high)


@dataclass
class FrameMasks:
    """Masks of T frame rows: ``order`` (T, N) token order, ``num_known`` (T,) visible tokens."""

    order: torch.Tensor
    num_known: torch.Tensor

    @property
    def num_masked(self) -> torch.Tensor:
        return self.order.size(1) - self.num_known


def draw_num_known(generator, num_frames: int, num_tokens: int, low=0.7, high=1.0, std=0.25,
                   full_share: float = 0.0) -> torch.Tensor:
    """Visible tokens per frame: the first draw of :func:`draw_masks`, cheap without the orders.

    ``full_share`` of the frames (drawn per frame) hide every token, as generation's first set
    sees none: with only the truncated normal, ~3 % of a 60-token frame's rows do, and a small
    model learns to read the background off the few visible tokens instead of the caption.
    """
    ratios = truncated_normal(generator, num_frames, low, high, std)
    if full_share > 0:  # drawn only when asked, so the paper's masks stay those of every earlier run
        ratios = torch.where(torch.rand(num_frames, generator=generator, dtype=torch.float64) < full_share, 1.0, ratios)
    return torch.round((1 - ratios) * num_tokens).long()


def draw_masks(generator, num_frames: int, num_tokens: int, low=0.7, high=1.0, std=0.25,
               full_share: float = 0.0) -> FrameMasks:
    """One ratio and one order per frame, all from ``generator``."""
    num_known = draw_num_known(generator, num_frames, num_tokens, low, high, std, full_share)
    order = torch.rand(num_frames, num_tokens, generator=generator).argsort(dim=1)
    return FrameMasks(order, num_known)


def spatial_inputs(masks: list[FrameMasks]):
    """Stack rows for the spatial encoder.

    -> known_ids (R, k_max, 1) with rows padded by later tokens of their order, known_lengths (R,),
    mask (R, N, 1) float, 1 where a token is hidden (predicted and in the loss).
    """
    order = torch.cat([m.order for m in masks])
    num_known = torch.cat([m.num_known for m in masks])
    k_max = int(num_known.max()) if num_known.numel() else 0
    hidden = torch.arange(order.size(1)).unsqueeze(0) >= num_known.unsqueeze(1)  # by slot of the order
    mask = torch.zeros(order.shape).scatter_(1, order, hidden.float())  # by token position
    return order[:, :k_max, None], num_known, mask.unsqueeze(-1)
