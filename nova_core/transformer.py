"""NOVATransformer3DModel: temporal encoder, spatial encoder, scale-shift layer and diffusion head.

State-dict names follow the released checkpoints (``video_encoder`` is the paper's temporal
encoder, ``image_encoder`` the spatial encoder, ``image_decoder`` the diffusion head,
``video_encoder.mixer`` the scale-and-shift layer).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import geometry
from .diffusion_head import DiffusionHead
from .embeddings import MaskEmbed, MotionEmbed, TextEmbed, VideoPosEmbed, space_embedding
from .layers import Block, KVCache, run_blocks
from .modeling import ModelMixin, register_to_config
from .patches import PatchEmbed


def block_causal_mask(prefix_len: int, num_frames: int, frame_len: int, dtype=torch.float32):
    """Additive mask (L, L) of a whole clip: the prefix and frame 0 form block 0, and a query may
    see every key of its own or an earlier block. Equal to generating frame by frame with a cache."""
    block = torch.cat([torch.zeros(prefix_len), torch.arange(num_frames).repeat_interleave(frame_len)])
    allowed = block.unsqueeze(1) >= block.unsqueeze(0)
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, float("-inf"))


class ScaleShift(nn.Module):
    """Maps frame t's temporal features relative to the BOV anchor: anchor * (1 + s) + b.

    [s, b] come from the current frame through a low-rank projection (rank 0: full width).
    """

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.activation = nn.SiLU()
        self.lora = nn.Linear(dim, rank, bias=False) if rank else nn.Identity()
        self.proj = nn.Linear(rank or dim, 2 * dim)

    def forward(self, anchor: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(self.lora(self.activation(current))).chunk(2, dim=-1)
        return anchor * (1 + scale) + shift


class TemporalEncoder(nn.Module):
    """Block-causal transformer over frames: frame t sees the prefix and frames 0..t."""

    def __init__(self, depth, dim, heads, channels, patch_size, mixer_rank):
        super().__init__()
        self.patch_embed = PatchEmbed(channels, dim, patch_size)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.mixer = ScaleShift(dim, mixer_rank) if mixer_rank is not None else None
        self.heads = heads
        self.gradient_checkpointing = False  # training opt-in, see layers.run_blocks

    def new_cache(self, batch: int, capacity: int, *, device, dtype) -> KVCache:
        dim = self.norm.normalized_shape[0]
        return KVCache(len(self.blocks), batch, self.heads, dim // self.heads, capacity,
                       device=device, dtype=dtype)

    def forward(self, x, prefix=None, cache: KVCache | None = None, attn_mask=None):
        """x: frame tokens (B, n, D); prefix: text + motion tokens (first call only).

        With a cache, x attends to everything committed before it, and is committed after.
        Without one, ``attn_mask`` gives the block-causal pattern of a whole video (training).
        """
        h = x if prefix is None else torch.cat([prefix, x], dim=1)
        if cache is None:
            h = run_blocks(self.blocks, h, None, attn_mask, checkpointing=self.gradient_checkpointing)
        else:
            for i, blk in enumerate(self.blocks):
                h = blk(h, cache.layer(i), attn_mask)
            cache.commit(h.size(1))
        return self.norm(h[:, h.size(1) - x.size(1) :])


class SpatialEncoder(nn.Module):
    """Bidirectional (MAR-style) encoder of one frame's tokens, conditioned on the prefix c.

    The first half of the blocks sees only [c, already-revealed tokens]; the second half sees
    [c', all tokens] with the unrevealed ones as mask tokens.
    """

    def __init__(self, depth, dim, heads, channels, patch_size):
        super().__init__()
        self.patch_embed = PatchEmbed(channels, dim, patch_size)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.gradient_checkpointing = False  # training opt-in, see layers.run_blocks

    def forward(self, tokens, c, known_ids=None, pos=None, known_lengths=None) -> torch.Tensor:
        """tokens: (B, N, D) embedded, unrevealed ones already masked; known_ids: (B, k, 1).

        ``known_lengths`` (B,) lets rows reveal different numbers of tokens (training draws a
        mask ratio per row): only the first ``known_lengths[b]`` ids of row b are real, the
        rest are padding that no token attends to and that is not written back.
        """
        x = tokens + pos if pos is not None else tokens
        split, rest, ckpt = len(self.blocks) // 2, self.blocks, self.gradient_checkpointing
        if split and known_ids is not None:
            ids = known_ids.expand(-1, -1, x.size(-1))
            h, mask, real = torch.cat([c, x.gather(1, ids)], dim=1), None, None
            if known_lengths is not None:
                slots = torch.arange(ids.size(1), device=x.device)
                real = (slots.unsqueeze(0) < known_lengths.to(x.device).unsqueeze(1)).unsqueeze(-1)
                keys = torch.cat([real.new_ones(real.size(0), c.size(1), 1), real], dim=1)
                mask = keys.view(keys.size(0), 1, 1, -1)  # (B, 1, 1, L): True = may be attended
            h = run_blocks(self.blocks[:split], h, None, mask, checkpointing=ckpt)
            c, seen = h.split([c.size(1), ids.size(1)], dim=1)
            if real is not None:
                seen = torch.where(real, seen, x.gather(1, ids))
            x, rest = x.scatter(1, ids, seen), self.blocks[split:]
        h = run_blocks(rest, torch.cat([c, x], dim=1), checkpointing=ckpt)
        return self.norm(h[:, c.size(1) :])


class NOVATransformer3DModel(ModelMixin):
    """The NOVA transformer. Sampling lives in :mod:`nova_core.sampling`; this holds the weights."""

    @register_to_config
    def __init__(
        self,
        image_dim=None,
        image_size=None,
        image_stride=None,
        text_token_dim=None,
        text_token_len=None,
        image_base_size=None,
        video_base_size=None,
        video_mixer_rank=None,
        rotary_pos_embed=False,
        arch=("", "", ""),
    ):
        super().__init__()
        geo = geometry(
            image_dim=image_dim, image_size=image_size, image_stride=image_stride,
            text_token_dim=text_token_dim, text_token_len=text_token_len,
            image_base_size=image_base_size, video_base_size=video_base_size,
            video_mixer_rank=video_mixer_rank, rotary_pos_embed=rotary_pos_embed, arch=arch,
        )
        self.geometry = geo
        t, s, d = geo.temporal, geo.spatial, geo.head
        c = geo.latent_channels
        self.video_encoder = TemporalEncoder(t.depth, t.width, t.heads, c, geo.video_patch_size, geo.mixer_rank)
        self.image_encoder = SpatialEncoder(s.depth, s.width, s.heads, c, geo.patch_size)
        self.image_decoder = DiffusionHead(d.depth, d.width, s.width, geo.patch_size, c)
        self.mask_embed = MaskEmbed(s.width)
        self.text_embed = TextEmbed(geo.text_token_dim, s.width, geo.text_token_len)
        self.video_pos_embed = VideoPosEmbed(t.width, geo.video_base_size)
        self.motion_embed = MotionEmbed(t.width) if geo.has_motion else None

    def image_space_embedding(self) -> torch.Tensor:
        """(N, D) position table of the spatial encoder, in the model's device/dtype."""
        h, w = self.geometry.image_base_size
        return space_embedding(h, w, self.geometry.spatial.width).to(self.device, self.dtype)

    def prefix(self, text_hidden: torch.Tensor, motion_flow: torch.Tensor | None = None):
        """Prefix tokens of the temporal encoder: projected text, then [flow, fps] for video models."""
        tokens = self.text_embed(text_hidden.to(self.device, self.dtype))
        if self.motion_embed is None:
            return tokens
        if motion_flow is None:
            raise ValueError("video checkpoints need a motion_flow value per row")
        return torch.cat([tokens, self.motion_embed(motion_flow)], dim=1)

    def temporal_conditions(self, prefix: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Teacher-forced temporal encoder over a whole clip in one pass (training form).

        latents (B, C, T, h, w) -> per-frame spatial conditions (B, T, Nv, D): frame t is
        conditioned on the prefix and the true frames < t, after the scale-shift layer.
        """
        return self.scale_shift(self.temporal_features(prefix, latents))

    def scale_shift(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame temporal features (B, T, Nv, D) -> the spatial conditions: frames after the
        first relative to the BOV anchor (frame 0), through the scale-shift layer when there is one."""
        mixer = self.video_encoder.mixer
        if mixer is None or features.size(1) == 1:
            return features
        return torch.cat([features[:, :1], mixer(features[:, :1], features[:, 1:])], dim=1)

    def temporal_features(self, prefix: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The temporal encoder's per-frame output (B, T, Nv, D), before the scale-shift layer."""
        batch, num_frames = latents.size(0), latents.size(2)
        time_embed = self.video_pos_embed.time_embedding(num_frames)
        space = self.video_pos_embed.space_embedding().to(self.device, self.dtype)
        tokens = [self.frame_tokens(latents[:, :, t - 1] if t else None, batch, time_embed, t, space)
                  for t in range(num_frames)]
        mask = None
        if num_frames > 1:
            mask = block_causal_mask(prefix.size(1), num_frames, space.size(0), self.dtype).to(self.device)
        h = self.video_encoder(torch.cat(tokens, dim=1), prefix, attn_mask=mask)
        return h.view(batch, num_frames, space.size(0), -1)

    def frame_tokens(self, previous: torch.Tensor | None, batch: int, time_embed, t: int, space):
        """Temporal-encoder input of frame t: BOV tokens for t = 0, else the previous latent's patches."""
        if previous is None:
            x = self.mask_embed.bos_token.expand(batch, space.size(0), -1)
        else:
            x = self.video_encoder.patch_embed(previous.to(self.dtype))
        return x + time_embed[t] + space
