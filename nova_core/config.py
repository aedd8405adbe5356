"""Checkpoint configs -> the numbers the model is built from.

The released checkpoints name their three networks with fixed strings (``vit_d16w1024``...);
the tiny test checkpoints use the same pattern with other numbers. Both resolve here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .errors import CheckpointError

# Released names are table entries: their head counts do not follow one rule (w1536 has 16 heads).
_RELEASED_VIT = {
    "vit_d16w768": (16, 768, 12),
    "vit_d16w1024": (16, 1024, 16),
    "vit_d16w1536": (16, 1536, 16),
    "vit_d32w768": (32, 768, 12),
    "vit_d32w1024": (32, 1024, 16),
    "vit_d32w1536": (32, 1536, 16),
}
_RELEASED_MLP = {
    "mlp_d3w1280": (3, 1280),
    "mlp_d6w768": (6, 768),
    "mlp_d6w1024": (6, 1024),
    "mlp_d6w1536": (6, 1536),
}
_GENERIC = re.compile(r"^(vit|mlp)_d(\d+)w(\d+)$")


@dataclass(frozen=True)
class ViTArch:
    depth: int
    width: int
    heads: int


@dataclass(frozen=True)
class MLPArch:
    depth: int
    width: int


def parse_vit(name: str) -> ViTArch:
    """``vit_d{D}w{W}``: released table first, else W // 32 heads (the tiny checkpoints' rule)."""
    if name in _RELEASED_VIT:
        return ViTArch(*_RELEASED_VIT[name])
    m = _GENERIC.match(str(name))
    if not m or m.group(1) != "vit":
        raise CheckpointError(f"unknown transformer arch {name!r}: expected vit_d<depth>w<width>")
    depth, width = int(m.group(2)), int(m.group(3))
    if depth < 1 or width < 32 or width % 32:
        raise CheckpointError(f"unknown transformer arch {name!r}: width must be a multiple of 32")
    return ViTArch(depth, width, width // 32)


def parse_mlp(name: str) -> MLPArch:
    if name in _RELEASED_MLP:
        return MLPArch(*_RELEASED_MLP[name])
    m = _GENERIC.match(str(name))
    if not m or m.group(1) != "mlp":
        raise CheckpointError(f"unknown diffusion head arch {name!r}: expected mlp_d<depth>w<width>")
    depth, width = int(m.group(2)), int(m.group(3))
    if depth < 1 or width < 1:
        raise CheckpointError(f"unknown diffusion head arch {name!r}")
    return MLPArch(depth, width)


@dataclass(frozen=True)
class Geometry:
    """Everything the transformer derives from its config, in one place."""

    temporal: ViTArch
    spatial: ViTArch
    head: MLPArch
    latent_channels: int
    pixel_size: tuple[int, int]  # (H, W) of one decoded frame
    latent_size: tuple[int, int]  # (h, w) of one latent frame
    patch_size: int  # spatial encoder / diffusion head patch
    video_patch_size: int  # temporal encoder patch (twice as coarse)
    image_base_size: tuple[int, int]
    video_base_size: tuple[int, int, int]
    text_token_dim: int
    text_token_len: int
    mixer_rank: int | None

    @property
    def num_tokens(self) -> int:
        """Tokens per frame in the spatial encoder = tokens per set-by-set schedule."""
        return self.image_base_size[0] * self.image_base_size[1]

    @property
    def num_video_tokens(self) -> int:
        return self.video_base_size[1] * self.video_base_size[2]

    @property
    def has_motion(self) -> bool:
        """Only video checkpoints (base length > 1) carry the motion-flow embedding."""
        return self.video_base_size[0] > 1



def geometry(
    *,
    image_dim: int,
    image_size: int | Sequence[int],
    image_stride: int,
    text_token_dim: int | None,
    text_token_len: int | None,
    image_base_size: Sequence[int],
    video_base_size: Sequence[int],
    video_mixer_rank: int | None,
    rotary_pos_embed: bool,
    arch: Sequence[str],
) -> Geometry:
    if rotary_pos_embed:
        raise CheckpointError(
            "rotary_pos_embed=true: no released NOVA checkpoint uses rotary position embeddings,"
            " and nova implements the absolute ones only"
        )
    if not text_token_dim or not text_token_len:
        raise CheckpointError("the transformer config has no text_token_dim/text_token_len: "
                              "class-conditional NOVA checkpoints are not supported")
    if arch is None or len(arch) != 3:
        raise CheckpointError(f"arch must name three networks (temporal, spatial, head), got {arch!r}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not image_stride:
        raise CheckpointError(f"bad image_size/image_stride: {image_size!r}/{image_stride!r}")
    latent = (size[0] // image_stride, size[1] // image_stride)
    patch = 15 // image_stride + 1
    ibase, vbase = tuple(image_base_size), tuple(video_base_size)
    if (latent[0] // patch, latent[1] // patch) != ibase:
        raise CheckpointError(
            f"image_base_size {list(ibase)} does not match the token grid of image_size {list(size)}"
        )
    if len(vbase) != 3 or (latent[0] // (2 * patch), latent[1] // (2 * patch)) != vbase[1:]:
        raise CheckpointError(
            f"video_base_size {list(vbase)} does not match the temporal token grid of {list(size)}"
        )
    geo = Geometry(
        temporal=parse_vit(arch[0]),
        spatial=parse_vit(arch[1]),
        head=parse_mlp(arch[2]),
        latent_channels=image_dim,
        pixel_size=size,
        latent_size=latent,
        patch_size=patch,
        video_patch_size=2 * patch,
        image_base_size=ibase,
        video_base_size=vbase,
        text_token_dim=text_token_dim,
        text_token_len=text_token_len,
        mixer_rank=max(video_mixer_rank, 0) if video_mixer_rank else None,
    )
    if geo.temporal.width != geo.spatial.width:
        raise CheckpointError("the temporal and spatial encoders must have the same width")
    return geo
