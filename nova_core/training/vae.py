"""Training a video VAE from scratch: reconstruction (L1 + MSE in [-1, 1] pixels) plus a small KL
term towards N(0, 1), as KL autoencoders are trained. Used by the demo recipe to build its causal
3D VAE on the same clips the transformer then learns from.

Every draw (which items a step uses, where a window starts, the posterior sample) comes from
generators seeded with (seed, step, position), so the same settings give the same weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .data import generator
from .lr import SCHEDULES
from .lr import lr_factor as shared_lr_factor


@dataclass
class VAETrainSettings:
    steps: int = 2000
    batch_size: int = 4  # samples per optimizer step (batched by window shape)
    clip_frames: int = 9  # frames of the window cut from a clip (1 + 4k: whole latent frames)
    crop: list | None = None  # [h, w] random crop of every sample (the VAE is convolutional), None: whole
    # 1e-4: on the demo clips 1e-3 and 3e-3 fit 16 fixed clips worse after 200 steps (L1 0.41, 0.41)
    # than 1e-4 (0.21), and never settle on the whole set
    lr: float = 1e-4
    warmup_steps: int = 50
    schedule: str = "constant"  # after the warmup: "constant" or "cosine" (down to 1 % of lr at the end)
    clip_grad: float | None = None  # max gradient norm, None: not clipped
    kl_weight: float = 1e-4  # per latent element, against the per-pixel reconstruction loss
    # Extra weight of pixels far from the sample's median colour (0: plain mean). Where a small
    # object on a flat background is a few % of the pixels, an unweighted loss is lowest with the
    # object painted over by its background, and training settles there.
    rare_pixel_weight: float = 0.0
    # Weight of a term pulling the posterior mean to ``pooled_latents`` of the input (0: none): a
    # latent grid that is the frame itself, coarsened, which the demo's transformer learns from in
    # a CPU budget (its stage was probed on exactly these latents); the decoder still learns the rest.
    latent_anchor_weight: float = 0.0
    crop_on_content: bool = False  # crops hold the object (see ``window``)
    max_frame_stride: int = 1  # windows take every k-th frame, k in 1..this (see ``window``)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> (3, T, H, W) float32 in [-1, 1]."""
    return (torch.from_numpy(np.array(frames)).float() / 127.5 - 1).permute(3, 0, 1, 2)


def median_distance(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, H, W): each pixel's distance from the sample's median colour, 0..1."""
    median = x.flatten(2).median(dim=2).values[:, :, None, None, None]
    return ((x - median).abs().amax(dim=1, keepdim=True) / 2).clamp(0, 1)


def pixel_weights(x: torch.Tensor, rare_pixel_weight: float) -> torch.Tensor:
    """(B, 1, T, H, W): 1 + w * (distance from the sample's median colour, 0..1)."""
    return 1 + rare_pixel_weight * median_distance(x)


POOL, FOLD = 4, 2  # pooled_latents: pixels per pooled cell, cells folded into channels per latent side


def pooled_latents(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Pixels (B, 3, T, H, W) in [-1, 1] -> (B, channels, 1 + (T - 1) // 4, H / 8, W / 8): latent k holds
    frame 4k (frame 0 alone first, as a causal video VAE's does), average-pooled 4x4 and folded 2x2
    into the first 12 channels; the others are zero."""
    frames = x[:, :, ::4].transpose(1, 2)  # (B, T', 3, H, W)
    b, t = frames.shape[:2]
    folded = torch.nn.functional.pixel_unshuffle(torch.nn.functional.avg_pool2d(frames.flatten(0, 1), POOL), FOLD)
    if folded.size(1) > channels:
        raise ValueError(f"pooled latents need {folded.size(1)} channels, the VAE has {channels}")
    folded = torch.cat([folded, folded.new_zeros(folded.size(0), channels - folded.size(1), *folded.shape[2:])], dim=1)
    return folded.view(b, t, channels, *folded.shape[2:]).transpose(1, 2)


def vae_loss(vae, x: torch.Tensor, gen, kl_weight: float, rare_pixel_weight: float = 0.0,
             latent_anchor_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """x (B, 3, T, H, W) -> (loss, {"reconstruction", "kl"}), each the mean over the B samples;
    the latent is a posterior sample. ``gen``: one generator, or one per sample (so a sample's
    noise does not depend on what it is batched with)."""
    posterior = vae.encode(x).latent_dist
    shape = posterior.mean.shape
    if isinstance(gen, torch.Generator):
        noise = torch.randn(shape, generator=gen)
    else:
        noise = torch.stack([torch.randn(shape[1:], generator=g) for g in gen])
    recon = vae.decode(posterior.mean + posterior.std * noise).sample
    error = recon - x
    per_pixel = error.abs() + error**2
    if rare_pixel_weight:
        weights = pixel_weights(x, rare_pixel_weight).expand_as(x)
        reconstruction = (per_pixel * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)
    else:
        reconstruction = per_pixel.flatten(1).mean(1)
    kl = (0.5 * (posterior.mean**2 + posterior.var - 1 - posterior.logvar)).flatten(1).mean(1)
    reconstruction, kl = reconstruction.mean(), kl.mean()
    loss, parts = reconstruction + kl_weight * kl, {"reconstruction": reconstruction.item(), "kl": kl.item()}
    if latent_anchor_weight:
        anchor = (posterior.mean - pooled_latents(x, shape[1])).pow(2).mean()
        loss, parts["anchor"] = loss + latent_anchor_weight * anchor, anchor.item()
    return loss, parts


def window(frames: np.ndarray, length: int, gen: torch.Generator, crop=None, on_content: bool = False,
           max_stride: int = 1) -> np.ndarray:
    """A random run of ``length`` frames (the whole item when it is shorter, e.g. an image), every
    k-th frame with k drawn from 1..``max_stride`` (as far as the item is long enough: faster motion
    than the clips have, so the latents after the first must carry it), cut to a random ``crop`` =
    [h, w] of the frame when given. ``on_content``: the crop is drawn
    among those that hold every pixel far from the run's median colour (the object), or that
    centre it when none can; on a small object most plain random crops miss it."""
    if len(frames) > length:
        stride = 1
        if max_stride > 1 and length > 1:  # drawn only then, so stride-1 windows keep their draws
            stride += int(torch.randint(min(max_stride, (len(frames) - 1) // (length - 1)), (), generator=gen))
        span = (length - 1) * stride + 1
        start = int(torch.randint(len(frames) - span + 1, (), generator=gen))
        frames = frames[start : start + span : stride]
    if crop is None:
        return frames
    (height, width), (h, w) = frames.shape[1:3], crop
    if h > height or w > width:
        raise ValueError(f"crop {list(crop)} is larger than the {height}x{width} frames")
    rows, cols = (0, height - h), (0, width - w)
    if on_content:
        far = (median_distance(to_pixels(frames)[None])[0, 0] > 0.2).any(dim=0)
        ys, xs = torch.nonzero(far, as_tuple=True)
        if len(ys):
            rows = _holding(int(ys.min()), int(ys.max()), h, height)
            cols = _holding(int(xs.min()), int(xs.max()), w, width)
    top = rows[0] + int(torch.randint(rows[1] - rows[0] + 1, (), generator=gen))
    left = cols[0] + int(torch.randint(cols[1] - cols[0] + 1, (), generator=gen))
    return frames[:, top : top + h, left : left + w]


def _holding(first: int, last: int, size: int, total: int) -> tuple[int, int]:
    """The crop starts (lowest, highest) along one axis that hold pixels first..last, or the one
    start that centres them when they do not fit."""
    low, high = max(0, last + 1 - size), min(total - size, first)
    if low > high:
        low = high = min(max(0, (first + last + 1 - size) // 2), total - size)
    return low, high


def lr_factor(step: int, s: VAETrainSettings) -> float:
    """Warmup, then constant or cosine down to 1 % of the lr at the last step."""
    return shared_lr_factor(step, s.warmup_steps, s.schedule, s.steps - 1 - s.warmup_steps, floor=0.01)


def train_vae(vae, items: list[np.ndarray], settings: VAETrainSettings, log=None) -> list[dict]:
    """Train ``vae`` in place on uint8 clips/images (T, H, W, 3); returns one metrics dict per step.

    ``log(step, metrics)`` is called after every step when given.
    """
    if not items:
        raise ValueError("train_vae needs at least one clip or image")
    if settings.clip_frames < 1 or (settings.clip_frames - 1) % vae.temporal_compression_ratio:
        raise ValueError(f"clip_frames must be 1 + {vae.temporal_compression_ratio}k, got {settings.clip_frames}")
    s = settings
    vae.train()
    if s.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {s.schedule!r}")
    optimizer = torch.optim.AdamW(vae.parameters(), lr=s.lr, betas=(0.9, 0.99), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, s))
    history = []
    for step in range(s.steps):
        order = generator(s.seed, step, 0)
        picks = torch.randint(len(items), (s.batch_size,), generator=order).tolist()
        optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0}  # then every part vae_loss reports
        # the windows of a step, batched by shape (clips and stills differ): one batched conv3d
        # takes PyTorch's mkldnn path, one sample at a time its slow one (measured 5x slower)
        batches = {}
        for position, index in enumerate(picks):
            gen = generator(s.seed, step, position + 1)
            x = to_pixels(window(items[index], s.clip_frames, gen, s.crop, s.crop_on_content, s.max_frame_stride))
            batches.setdefault(tuple(x.shape), []).append((x, gen))
        for batch in batches.values():
            share = len(batch) / s.batch_size
            loss, parts = vae_loss(vae, torch.stack([x for x, _ in batch]), [g for _, g in batch],
                                   s.kl_weight, s.rare_pixel_weight, s.latent_anchor_weight)
            (loss * share).backward()
            totals["loss"] += loss.item() * share
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value * share
        if s.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(vae.parameters(), s.clip_grad)
        optimizer.step()
        schedule.step()
        metrics = dict(step=step + 1, lr=schedule.get_last_lr()[0], **totals)
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(f"VAE training diverged at step {step + 1} (loss {metrics['loss']})")
        history.append(metrics)
        if log is not None:
            log(step + 1, metrics)
    return history


@torch.no_grad()
def latent_scale(vae, items: list[np.ndarray]) -> float:
    """1 / std of the posterior means over ``items``: the ``scaling_factor`` that gives the
    diffusion model unit-variance latents (how SD's 0.18215 was chosen)."""
    vae.eval()
    means = [vae.encode(to_pixels(frames)[None]).latent_dist.mean.flatten() for frames in items]
    return float(1.0 / torch.cat(means).std())
