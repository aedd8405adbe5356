"""The OpenSora-Plan causal 3D VAE used by the NOVA video checkpoints (``AutoencoderKLOpenSora``).

Pixels (B, 3, F, H, W) map to latents (B, C, 1 + (F-1)//4, H/8, W/8); a single image (B, 3, H, W)
maps to (B, C, H/8, W/8). Every 3D convolution is causal in time: the first frame is replicated in
front instead of zero padding, so frame 0 is encoded like a still image and later frames only see
the past. Parameter names follow the official ``diffnext`` checkpoints, so their weights load as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modeling import ModelMixin, register_to_config
from .posterior import AutoencoderKLOutput, DecoderOutput, DiagonalGaussianDistribution

# Long clips are processed in temporal windows, as the official code does. A window's first frame
# is causal "image" context (encoded/decoded without its past), so consecutive windows overlap by
# one frame and that frame is taken from the earlier window.
ENCODE_WINDOW_FRAMES = 17  # pixel frames per encoder pass (= 5 latent frames)
DECODE_WINDOW_LATENTS = 5  # latent frames per decoder pass (= 17 pixel frames)


ACTIVATIONS = {"swish": nn.SiLU, "silu": nn.SiLU, "mish": nn.Mish, "gelu": nn.GELU, "relu": nn.ReLU}  # diffusers' names


def activation(name: str) -> nn.Module:
    if name.lower() not in ACTIVATIONS:
        raise ValueError(f"unknown act_fn {name!r} (one of {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name.lower()]()


def _is_3d(block_type: str) -> bool:
    return "3D" in block_type


def _fold_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W), so 2D layers see every frame as its own image."""
    return x.transpose(1, 2).flatten(0, 1)


def _unfold_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W); the inverse of `_fold_frames`."""
    return x.unflatten(0, (-1, num_frames)).transpose(1, 2)


def _as_video(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Enter the 3D part of the network: per-frame 2D activations become one video tensor."""
    return _unfold_frames(x, num_frames) if x.dim() == 4 else x


def _per_frame(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D layer to a video frame by frame (no-op wrapper for 3D layers and 4-D inputs)."""
    if x.dim() == 5 and isinstance(layer, nn.Conv2d):
        return _unfold_frames(layer(_fold_frames(x)), x.shape[2])
    return layer(x)


class CausalConv3d(nn.Conv3d):
    """Conv3d that pads time by repeating the first frame (kernel_t - 1 copies), never the future."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.padding = (0,) + self.padding[1:]  # space only; time is handled in forward
        self.time_padding = self.kernel_size[0] - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_padding:
            x = F.pad(x, (0, 0, 0, 0, self.time_padding, 0), mode="replicate")
        return super().forward(x)


def _conv_cls(is_3d: bool):
    return CausalConv3d if is_3d else nn.Conv2d


class ResnetBlock(nn.Module):
    """norm -> act -> conv, twice, plus a 1x1 shortcut when the width changes.

    On a 5-D input the GroupNorm statistics span all frames of the clip (as in the checkpoints'
    training), which is why a clip's latents depend on how it is split into windows.
    """

    def __init__(self, in_channels, out_channels, is_3d, groups=32, act_fn="silu"):
        super().__init__()
        conv = _conv_cls(is_3d)
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=1e-6)
        self.conv1 = conv(in_channels, out_channels, 3, 1, 1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=1e-6)
        self.conv2 = conv(out_channels, out_channels, 3, 1, 1)
        self.conv_shortcut = None
        if in_channels != out_channels:
            self.conv_shortcut = conv(in_channels, out_channels, 1)
        self.nonlinearity = activation(act_fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        h = self.conv2(self.nonlinearity(self.norm2(h)))
        # In place, so the sum keeps the conv output's memory layout, as the official code does
        # (an out-of-place add may pick another layout and so other kernels downstream).
        return h.add_(shortcut)


class FrameAttention(nn.Module):
    """Single-head self-attention over the spatial positions of each frame separately.

    The GroupNorm in front still sees the whole clip; only the attention itself is per frame.
    """

    def __init__(self, dim, groups=32):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, dim, eps=1e-6)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.group_norm(x)
        if h.dim() == 5:
            h = _fold_frames(h)
        tokens = h.flatten(2).transpose(1, 2).contiguous()  # (B*T, H*W, C)
        # One head: add a head axis of size 1 for SDPA.
        q, k, v = (proj(tokens).unsqueeze(1) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        out = self.to_out[0](out).transpose(1, 2)  # (B*T, C, H*W)
        if x.dim() == 5:
            out = out.unflatten(0, (-1, x.shape[2])).transpose(1, 2)  # (B, C, T, H*W)
        # Reshaping this (not a contiguous copy) keeps the official memory layout; the layout
        # steers which conv/norm kernels run next, and so the last bits of the result.
        return out.reshape(x.shape)


class Downsample(nn.Module):
    """Stride-2 conv (kernel 3, no padding) after a one-pixel zero pad on the right and bottom.

    The 3D variant also halves time ((T - 1)//2 + 1 frames, via the causal pad of its conv).
    """

    def __init__(self, channels, is_3d):
        super().__init__()
        self.is_3d = is_3d
        self.conv = _conv_cls(is_3d)(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self.is_3d:
            x = _as_video(x, num_frames)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double the resolution, then a 3x3 conv.

    `temporal` (3D kernel-3 stages): trilinear x2 in time and space, except frame 0, which is only
    scaled in space so that T frames become 1 + 2(T - 1). Otherwise (the (1,3,3) stage of a 3D
    decoder, or a 2D decoder): nearest-neighbour x2 in space only.
    """

    def __init__(self, channels, is_3d, temporal):
        super().__init__()
        self.temporal = temporal
        if is_3d:
            kernel_size = 3 if temporal else (1, 3, 3)
            self.conv = CausalConv3d(channels, channels, kernel_size, 1, 1)
        else:
            self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal:
            first = F.interpolate(x[:, :, :1], scale_factor=(1, 2, 2), mode="trilinear")
            if x.shape[2] > 1:
                rest = F.interpolate(x[:, :, 1:], scale_factor=(2, 2, 2), mode="trilinear")
                first = torch.cat([first, rest], dim=2)
            x = first
        else:
            x = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        return self.conv(x)


class DownEncoderBlock(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, is_3d, downsample_3d, groups, act_fn):
        """`downsample_3d`: None for the last block, else whether the *next* block is 3D."""
        super().__init__()
        self.is_3d = is_3d
        self.resnets = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels, is_3d, groups, act_fn)
            for i in range(num_layers)
        )
        self.downsamplers = nn.ModuleList()
        if downsample_3d is not None:
            self.downsamplers.append(Downsample(out_channels, downsample_3d))

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self.is_3d:
            x = _as_video(x, num_frames)
        for resnet in self.resnets:
            x = resnet(x)
        for downsampler in self.downsamplers:
            x = downsampler(x, num_frames)
        return x


class UpDecoderBlock(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, is_3d, upsample, groups, act_fn):
        """`upsample`: None (last block), "temporal" or "spatial"."""
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels, is_3d, groups, act_fn)
            for i in range(num_layers)
        )
        self.upsamplers = nn.ModuleList()
        if upsample is not None:
            self.upsamplers.append(Upsample(out_channels, is_3d, temporal=upsample == "temporal"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for upsampler in self.upsamplers:
            x = upsampler(x)
        return x


class MidBlock(nn.Module):
    """resnet -> (attention + residual) -> resnet."""

    def __init__(self, channels, is_3d, groups, act_fn):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(channels, channels, is_3d, groups, act_fn) for _ in range(2)
        )
        self.attentions = nn.ModuleList([FrameAttention(channels, groups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        x = self.attentions[0](x).add_(x)  # in place: keep the attention output's layout
        return self.resnets[1](x)


class Encoder(nn.Module):
    """2D stages per frame, then 3D stages on the clip. Takes and returns 5-D tensors.

    Each downsampler has the type of the block after it, so the switch from per-frame to clip
    happens inside the last 2D block's downsampler. conv_in is always 2D; the mid block and
    conv_out take the type of the last block.
    """

    def __init__(self, in_channels, out_channels, block_types, block_channels, layers, groups, act_fn):
        super().__init__()
        is_3d = [_is_3d(t) for t in block_types]
        if any(a and not b for a, b in zip(is_3d, is_3d[1:])):
            raise ValueError(f"2D encoder blocks cannot follow 3D ones: {list(block_types)}")
        self.conv_in = nn.Conv2d(in_channels, block_channels[0], 3, 1, 1)
        self.down_blocks = nn.ModuleList()
        for i, out_ch in enumerate(block_channels):
            in_ch = block_channels[max(i - 1, 0)]
            downsample_3d = is_3d[i + 1] if i + 1 < len(block_channels) else None
            self.down_blocks.append(
                DownEncoderBlock(in_ch, out_ch, layers, is_3d[i], downsample_3d, groups, act_fn)
            )
        self.mid_block = MidBlock(block_channels[-1], is_3d[-1], groups, act_fn)
        self.conv_act = activation(act_fn)
        self.conv_norm_out = nn.GroupNorm(groups, block_channels[-1], eps=1e-6)
        self.conv_out = _conv_cls(is_3d[-1])(block_channels[-1], 2 * out_channels, 3, 1, 1)
        # Input frames per latent frame (after the first): one halving per 3D downsampler.
        self.temporal_ratio = 2 ** sum(is_3d[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num_frames = x.shape[2]
        h = self.conv_in(_fold_frames(x))
        for block in self.down_blocks:
            h = block(h, num_frames)
        h = self.mid_block(h)
        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return _as_video(h, num_frames)  # all-2D encoders never leave the per-frame layout


class Decoder(nn.Module):
    """Mid block, then up blocks from the widest stage down. Takes and returns 5-D tensors.

    In a 3D decoder every upsampler but the last doubles time and space; the last doubles space
    only. The blocks must be all 2D (run per frame) or all 3D.
    """

    def __init__(self, in_channels, out_channels, block_types, block_channels, layers, groups, act_fn):
        super().__init__()
        if len({_is_3d(t) for t in block_types}) > 1:
            raise ValueError(f"decoder blocks must be all 2D or all 3D: {list(block_types)}")
        self.is_3d = _is_3d(block_types[0])
        block_channels = list(reversed(block_channels))
        num_blocks = len(block_channels)
        # Output frames per latent frame (after the first): one doubling per temporal upsampler.
        self.temporal_ratio = 2 ** max(num_blocks - 2, 0) if self.is_3d else 1
        self.up_blocks = nn.ModuleList()
        for i, out_ch in enumerate(block_channels):
            in_ch = block_channels[max(i - 1, 0)]
            if i == num_blocks - 1:
                upsample = None
            elif self.is_3d and i < num_blocks - 2:
                upsample = "temporal"
            else:
                upsample = "spatial"
            self.up_blocks.append(
                UpDecoderBlock(in_ch, out_ch, layers + 1, self.is_3d, upsample, groups, act_fn)
            )
        conv = _conv_cls(self.is_3d)
        self.conv_in = conv(in_channels, block_channels[0], 3, 1, 1)
        self.mid_block = MidBlock(block_channels[0], self.is_3d, groups, act_fn)
        self.conv_act = activation(act_fn)
        self.conv_norm_out = nn.GroupNorm(groups, block_channels[-1], eps=1e-6)
        self.conv_out = conv(block_channels[-1], out_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        num_frames = z.shape[2]
        h = z if self.is_3d else _fold_frames(z)
        h = self.mid_block(self.conv_in(h))
        for block in self.up_blocks:
            h = block(h)
        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return _as_video(h, num_frames)


class AutoencoderKLOpenSora(ModelMixin):
    r"""Causal 3D KL autoencoder of OpenSora-Plan, as shipped with NOVA's ``osp480`` checkpoint.

    ``encode`` takes images (B, 3, H, W) or clips (B, 3, F, H, W) in [-1, 1] and returns unscaled
    posterior moments; ``decode`` takes unscaled latents (B, C, h, w) or (B, C, T, h, w). The
    pipeline applies ``scaling_factor`` / ``shift_factor`` itself.

    Temporal tiling: clips longer than ``ENCODE_WINDOW_FRAMES`` (17) frames, and latents longer
    than ``DECODE_WINDOW_LATENTS`` (5), are processed in windows stepping by window - 1, exactly
    as the official code does, so results agree wherever the windows tile the input. The official
    code silently drops the frames after the last complete window (6..8 latents decode to 17
    frames); here, instead, one more window aligned to the end covers them and only its frames
    not covered yet are kept. Aligning to the end (rather than a shorter last window) keeps every
    window at the length the model was run with, and keeps the earlier windows unchanged.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",) * 4,
        up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",) * 4,
        block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
        layers_per_block: int = 2,
        act_fn: str = "silu",
        latent_channels: int = 16,
        norm_num_groups: int = 32,
        sample_size: int = 256,
        scaling_factor: float = 0.18215,
        shift_factor: float | None = None,
        latents_mean: tuple[float, ...] | None = None,
        latents_std: tuple[float, ...] | None = None,
        force_upcast: bool = True,
        use_quant_conv: bool = True,
        use_post_quant_conv: bool = True,
    ):
        super().__init__()
        self.tiling = None  # (tile, overlap) in latent pixels; see enable_tiling
        common = dict(layers=layers_per_block, groups=norm_num_groups, act_fn=act_fn)
        self.encoder = Encoder(
            in_channels, latent_channels, down_block_types, block_out_channels, **common
        )
        self.decoder = Decoder(
            latent_channels, out_channels, up_block_types, block_out_channels, **common
        )
        # The 1x1 (quant) convs take the decoder's type, as in the official checkpoints.
        conv = _conv_cls(self.decoder.is_3d)
        self.quant_conv = None
        if use_quant_conv:
            self.quant_conv = conv(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = None
        if use_post_quant_conv:
            self.post_quant_conv = conv(latent_channels, latent_channels, 1)

    @property
    def temporal_compression_ratio(self) -> int:
        """Pixel frames per latent frame after the first (4 for the released checkpoint)."""
        return self.encoder.temporal_ratio

    def enable_tiling(self, tile_latent: int = 32, overlap: int = 8) -> None:
        """Decode in overlapping spatial tiles (diffusers' convention): memory bounded by the tile
        size, at the price of small differences near tile seams (blended linearly)."""
        if not 0 <= overlap < tile_latent:
            raise ValueError("need 0 <= overlap < tile_latent")
        self.tiling = (tile_latent, overlap)

    def disable_tiling(self) -> None:
        self.tiling = None

    def _decode_spatial_tiles(self, z: torch.Tensor) -> torch.Tensor:
        tile, overlap = self.tiling
        height, width = z.shape[-2:]
        if height <= tile and width <= tile:
            return self._decode_tiled(z)
        scale = 2 ** (len(self.config.block_out_channels) - 1)  # latent -> pixel

        def starts(size):
            if size <= tile:
                return [0]
            positions = list(range(0, size - tile + 1, tile - overlap))
            return positions if positions[-1] == size - tile else positions + [size - tile]

        def tent(n):  # 1 inside the tile, falling linearly over the overlap towards both edges
            x = torch.arange(n, device=z.device, dtype=torch.float32) + 0.5
            ramp = max(overlap * scale, 1)
            return torch.minimum(x, n - x).clamp(max=ramp) / ramp

        out = weight = None
        for top in starts(height):
            for left in starts(width):
                piece = self._decode_tiled(z[..., top : top + tile, left : left + tile]).float()
                if out is None:
                    out = piece.new_zeros(*piece.shape[:3], height * scale, width * scale)
                    weight = piece.new_zeros(height * scale, width * scale)
                ph, pw = piece.shape[-2:]
                w2d = tent(ph)[:, None] * tent(pw)[None, :]
                rows, cols = slice(top * scale, top * scale + ph), slice(left * scale, left * scale + pw)
                out[..., rows, cols] += piece * w2d
                weight[rows, cols] += w2d
        return (out / weight).to(z.dtype)

    def _encode_tiled(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output for a (B, 3, F, H, W) clip: 1 + (F - 1)//r latent frames for every F."""
        num_frames, window, ratio = x.shape[2], ENCODE_WINDOW_FRAMES, self.encoder.temporal_ratio
        if num_frames <= window or ratio == 1:
            return self.encoder(x)
        # Trailing frames that do not complete a latent frame are not encoded (as in one pass).
        usable = 1 + ratio * ((num_frames - 1) // ratio)
        starts = range(0, usable - window + 1, window - 1)
        tiles = [self.encoder(x[:, :, s : s + window]) for s in starts]
        pieces = [tiles[0]] + [tile[:, :, 1:] for tile in tiles[1:]]
        covered = starts[-1] + window
        if covered < usable:
            # Starts on a latent boundary: usable - window is a multiple of the ratio.
            tail = self.encoder(x[:, :, usable - window : usable])
            pieces.append(tail[:, :, -((usable - covered) // ratio) :])
        return torch.cat(pieces, dim=2)

    def _decode_tiled(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output for (B, C, T, h, w) latents: 1 + r(T - 1) frames for every T."""
        num_latents, window, ratio = z.shape[2], DECODE_WINDOW_LATENTS, self.decoder.temporal_ratio
        if num_latents <= window or ratio == 1:
            return self.decoder(z)
        starts = range(0, num_latents - window + 1, window - 1)
        tiles = [self.decoder(z[:, :, s : s + window]) for s in starts]
        pieces = [tiles[0]] + [tile[:, :, 1:] for tile in tiles[1:]]
        covered = starts[-1] + window
        if covered < num_latents:
            tail = self.decoder(z[:, :, num_latents - window :])
            pieces.append(tail[:, :, -ratio * (num_latents - covered) :])
        return torch.cat(pieces, dim=2)

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """Posterior over latents: (B, C, h, w) for an image batch, (B, C, T, h, w) for clips."""
        if x.dim() not in (4, 5):
            raise ValueError(f"expected (B, C, H, W) or (B, C, F, H, W) pixels, got {tuple(x.shape)}")
        is_image = x.dim() == 4
        moments = self._encode_tiled(x.unsqueeze(2) if is_image else x)
        if self.quant_conv is not None:
            moments = _per_frame(self.quant_conv, moments)
        if is_image:
            moments = moments.squeeze(2)
        posterior = DiagonalGaussianDistribution(moments)
        if not return_dict:
            return (posterior,)
        return AutoencoderKLOutput(latent_dist=posterior)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        """Pixels in about [-1, 1] (not clamped) from unscaled latents; 4-D in, 4-D out.

        `generator` is accepted for diffusers compatibility and unused.
        """
        if z.dim() not in (4, 5):
            raise ValueError(f"expected (B, C, h, w) or (B, C, T, h, w) latents, got {tuple(z.shape)}")
        is_image = z.dim() == 4
        z = z.unsqueeze(2) if is_image else z
        if self.post_quant_conv is not None:
            z = _per_frame(self.post_quant_conv, z)
        sample = self._decode_spatial_tiles(z) if self.tiling else self._decode_tiled(z)
        if is_image:
            sample = sample.squeeze(2)
        if not return_dict:
            return (sample,)
        return DecoderOutput(sample=sample)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ):
        """Reconstruction, like diffusers' ``AutoencoderKL.forward``."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)
