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
    if depth < 1 or width < 32 or width % 32 or depth > MAX_DEPTH or width > MAX_WIDTH:
        raise CheckpointError(f"unknown transformer arch {name!r}: depth must be 1..{MAX_DEPTH}, width a "
                              f"multiple of 32 up to {MAX_WIDTH}")
    return ViTArch(depth, width, width // 32)


def parse_mlp(name: str) -> MLPArch:
    if name in _RELEASED_MLP:
        return MLPArch(*_RELEASED_MLP[name])
    m = _GENERIC.match(str(name))
    if not m or m.group(1) != "mlp":
        raise CheckpointError(f"unknown diffusion head arch {name!r}: expected mlp_d<depth>w<width>")
    depth, width = int(m.group(2)), int(m.group(3))
    if not (1 <= depth <= MAX_DEPTH and 1 <= width <= MAX_WIDTH):
        raise CheckpointError(f"unknown diffusion head arch {name!r}: depth must be 1..{MAX_DEPTH}, width "
                              f"1..{MAX_WIDTH}")
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



MAX_DEPTH, MAX_WIDTH, MAX_PIXELS = 256, 16384, 16384  # far beyond any NOVA; keeps absurd configs cheap to refuse
MAX_TEXT_TOKENS = 512  # rows of the learned text padding (TextEmbed.weight)


def _ints(name: str, value, count: int | None, low: int, high: int):
    """An integer (``count`` None) or a list of ``count`` integers, each in [low, high]."""
    values = [value] if count is None else value
    ok = isinstance(values, (list, tuple)) and (count is None or len(values) == count) and all(
        isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values)
    if not ok:
        what = "an integer" if count is None else f"a list of {count} integers"
        raise CheckpointError(f"{name} must be {what} in [{low}, {high}], got {value!r}")
    return value if count is None else tuple(values)


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
    image_dim = _ints("image_dim", image_dim, None, 1, 1024)
    image_stride = _ints("image_stride", image_stride, None, 1, 64)
    image_base_size = _ints("image_base_size", image_base_size, 2, 1, 4096)
    video_base_size = _ints("video_base_size", video_base_size, 3, 1, 4096)
    if isinstance(image_size, (list, tuple)):
        image_size = _ints("image_size", image_size, 2, 1, MAX_PIXELS)
    else:
        image_size = _ints("image_size", image_size, None, 1, MAX_PIXELS)
    if video_mixer_rank is not None:
        video_mixer_rank = _ints("video_mixer_rank", video_mixer_rank, None, -1, 65536)
    if not isinstance(rotary_pos_embed, bool):
        raise CheckpointError(f"rotary_pos_embed must be true or false, got {rotary_pos_embed!r}")
    if rotary_pos_embed:
        raise CheckpointError(
            "rotary_pos_embed=true: no released NOVA checkpoint uses rotary position embeddings,"
            " and nova implements the absolute ones only"
        )
    if not text_token_dim or not text_token_len:
        raise CheckpointError("the transformer config has no text_token_dim/text_token_len: "
                              "class-conditional NOVA checkpoints are not supported")
    text_token_dim = _ints("text_token_dim", text_token_dim, None, 1, 65536)
    text_token_len = _ints("text_token_len", text_token_len, None, 1, MAX_TEXT_TOKENS)
    if not isinstance(arch, (list, tuple)) or len(arch) != 3 or not all(isinstance(a, str) for a in arch):
        raise CheckpointError(f"arch must name three networks (temporal, spatial, head), got {arch!r}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
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
