"""Transformer building blocks shared by the temporal and spatial encoders, and the KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_blocks(blocks, h, *args, checkpointing: bool = False):
    """Apply ``blocks`` in turn. With ``checkpointing`` (a training opt-in) and autograd on, each
    block's activations are recomputed in the backward pass instead of stored: less memory,
    one extra forward. Sampling runs without autograd, so it never takes that path."""
    for blk in blocks:
        if checkpointing and torch.is_grad_enabled():
            h = checkpoint(blk, h, *args, use_reentrant=False)
        else:
            h = blk(h, *args)
    return h


class MLP(nn.Module):
    """Two linear layers around an activation (GELU in the encoders, SiLU in the head)."""

    def __init__(self, dim: int, hidden: int | None = None, out: int | None = None, act=nn.GELU):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden or dim)
        self.fc2 = nn.Linear(hidden or dim, out or dim)
        self.activation = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class KVCache:
    """Keys and values of every temporal-encoder layer for all tokens seen so far.

    Preallocated for the whole video: a frame writes its own slice after the cached ones, so
    earlier frames are never recomputed, no buffer is re-allocated, and the cost of a frame does
    not depend on how long the video already is. ``commit`` makes a written frame visible to
    the frames after it.
    """

    def __init__(self, layers, batch, heads, head_dim, capacity, *, device=None, dtype=None):
        shape = (layers, batch, heads, capacity, head_dim)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.capacity, self.length = capacity, 0

    def layer(self, index: int) -> "LayerKV":
        return LayerKV(self, index)

    def write(self, index: int, k: torch.Tensor, v: torch.Tensor):
        """Store this call's k/v after the committed tokens; return everything visible to it."""
        end = self.length + k.size(2)
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} tokens > capacity {self.capacity}")
        self.keys[index, :, :, self.length : end] = k
        self.values[index, :, :, self.length : end] = v
        return self.keys[index, :, :, :end], self.values[index, :, :, :end]

    def commit(self, num_tokens: int) -> None:
        self.length += num_tokens


class LayerKV:
    """One layer's view of a :class:`KVCache` (what an attention module is handed)."""

    __slots__ = ("cache", "index")

    def __init__(self, cache: KVCache, index: int):
        self.cache, self.index = cache, index

    def write(self, k, v):
        return self.cache.write(self.index, k, v)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection; optional KV cache and mask."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, kv: LayerKV | None = None, attn_mask=None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if kv is not None:
            k, v = kv.write(k, v)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(o.transpose(1, 2).flatten(2))


class Block(nn.Module):
    """Transformer block with the norm after each branch: x + LN(Attn(x)), then x + LN(MLP(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dim * mlp_ratio)

    def forward(self, x, kv: LayerKV | None = None, attn_mask=None) -> torch.Tensor:
        x = self.norm1(self.attn(x, kv, attn_mask)) + x
        return self.norm2(self.mlp(x)) + x
