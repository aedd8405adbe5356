"""The NOVA sampling loop: frames (temporal, causal) -> sets (spatial, random order) -> denoising.

Read top to bottom it is the paper's generation procedure:

* ``sample_video``  frame t = 0..T-1: the temporal encoder turns [text, motion flow, frames < t]
  (earlier frames live in an explicit KV cache) into the frame's condition; the scale-shift
  layer maps it relative to the BOV anchor (frame 0);
* ``sample_frame``  inside a frame, tokens are revealed set by set in one random order with a
  cosine schedule; the spatial encoder sees the condition and the tokens revealed so far;
* ``denoise``       each set is denoised by the per-token diffusion head through the checkpoint's
  diffusers scheduler, with classifier-free guidance.

Random numbers come from one generator in exactly the reference's order (README section 5 of
the reference data): the token order once per call (first generated frame), then per set one
canvas of noise, then whatever the scheduler draws. The latent canvas is kept in float32 and
noise is always drawn in float32, so every dtype sees the same random numbers.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from .patches import patchify, unpatchify
from .progress import NullProgress
from .timing import NullTimer


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance: cond rows first, uncond rows second in every batch."""

    scale: float = 5.0
    trunc: float = 0.0  # switch CFG off for the rest of a set once timestep < trunc (0..1000 units)
    renorm: float = 1.0  # < 1: keep ||guided|| within [renorm, 1] x ||cond||

    @property
    def enabled(self) -> bool:
        return self.scale > 1

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x]) if self.enabled else x

    def combine(self, out: torch.Tensor) -> torch.Tensor:
        cond, uncond = out.chunk(2)
        guided = uncond + (cond - uncond) * self.scale
        if self.renorm >= 1:
            return guided
        dims = tuple(range(1, guided.dim()))
        ratio = cond.norm(dim=dims, keepdim=True) / guided.norm(dim=dims, keepdim=True)
        return guided * ratio.clamp(self.renorm, 1)


def mask_schedule(num_steps: int, num_tokens: int) -> np.ndarray:
    """Tokens revealed at each of ``num_steps`` set-by-set steps (cosine schedule, may hold zeros)."""
    ratios = np.cos(0.5 * np.pi * np.arange(num_steps + 1) / num_steps)
    remaining = np.round(ratios * num_tokens).astype("int64")
    return remaining[:-1] - remaining[1:]


def draw(shape, generator, *, uniform=False) -> torch.Tensor:
    """One float32 draw from the caller's generator, on the generator's device."""
    device = generator.device if generator is not None else "cpu"
    fn = torch.rand if uniform else torch.randn
    return fn(shape, generator=generator, device=device, dtype=torch.float32)


def token_order(batch: int, num_tokens: int, generator) -> torch.Tensor:
    """The random set order (B, N, 1), drawn once per call and shared by every generated frame."""
    return draw((batch, num_tokens, 1), generator, uniform=True).argsort(dim=1)


def denoise(head, scheduler, num_steps, z, ids, noise, guidance: Guidance, generator, grid):
    """Run the diffusion head over one set: noise (B, C, h, w) -> sample on the full canvas.

    The scheduler steps the whole canvas (so DDPM draws full-canvas noise like the reference);
    only the rows ``ids`` carry predictions, the rest are discarded by the caller.
    """
    scheduler.set_timesteps(num_steps)  # also rewinds the scheduler's step counter
    x, cfg, p = noise, guidance.enabled, head.patch_embed.patch_size
    for t in scheduler.timesteps:
        if cfg and guidance.trunc and float(t) < guidance.trunc:
            cfg, z, ids = False, z.chunk(2)[0], ids.chunk(2)[0]
        inp = torch.cat([x, x]) if cfg else x
        timestep = torch.as_tensor(t, device=z.device).expand(inp.size(0))
        out = head(inp.to(z.dtype), timestep, z, ids).float()
        out = guidance.combine(out) if cfg else out
        x = scheduler.step(unpatchify(out, p, grid), t, x, generator=generator).prev_sample
    return x


def sample_frame(model, scheduler, c, order, num_preds, num_diffusion_steps, guidance, generator,
                 pos, progress, frame_index=0, timer=NullTimer()):
    """Fill one latent frame set by set. c: (B or 2B, Nv, D) condition from the temporal encoder."""
    geo, device, dtype = model.geometry, c.device, c.dtype
    (batch, num_tokens, _), p = order.shape, geo.patch_size
    grid = (geo.latent_size[0] // p, geo.latent_size[1] // p)
    x = torch.zeros(batch, geo.latent_channels, *geo.latent_size, device=device)
    mask_token = model.mask_embed.mask_token
    start = 0
    for i, k in enumerate(num_preds):
        known, current = order[:, :start], order[:, start : start + k]
        # Spatial encoder: unrevealed tokens become MASK; revealed ones are seen by every block.
        hidden = torch.zeros(batch, num_tokens, 1, device=device, dtype=dtype).scatter_(1, order[:, start:], 1)
        with timer("spatial"):
            tokens = model.image_encoder.patch_embed(x.to(dtype))
            tokens = tokens * (1 - hidden) + mask_token * hidden
            z = model.image_encoder(guidance.expand(tokens), c, guidance.expand(known), pos)
        # Diffusion head: denoise this set's tokens from fresh noise over the whole canvas.
        noise = draw(x.shape, generator).to(device)
        with timer("head"):
            sample = denoise(model.image_decoder, scheduler, num_diffusion_steps, z,
                             guidance.expand(current), noise, guidance, generator, grid)
        keep = torch.zeros(batch, num_tokens, 1, device=device).scatter_(1, current, 1)
        x = x + unpatchify(patchify(sample, p) * keep, p, grid)
        start += k
        progress.step(frame_index, i + 1, len(num_preds))
    return x


@dataclass
class VideoSample:
    latents: torch.Tensor  # (B, C, T, h, w), float32, scaled latent space
    order: torch.Tensor | None  # (B, N, 1) set order, None if nothing was generated


@torch.inference_mode()
def sample_video(model, scheduler, prefix, *, num_frames, prefill=None, num_inference_steps=64,
                 num_diffusion_steps=25, guidance=Guidance(), generator=None, progress=None,
                 fast=False, cuda_graphs=False, timer=None, graph_cache=None):
    """Generate ``num_frames`` latent frames after the ``prefill`` ones (B, C, K, h, w) if given.

    prefix: (B or 2B, P, D) text + motion tokens (cond rows first under CFG). ``fast`` (what the
    pipeline passes by default) runs the set-by-set steps through :mod:`nova_core.sampling_fast`
    (same function, fewer and larger ops); ``cuda_graphs`` additionally captures them, keeping the
    graphs in ``graph_cache`` (a :class:`~nova_core.sampling_fast.GraphCache`; the pipeline's own,
    so later calls replay them). ``timer`` receives "temporal", "spatial", "head".
    """
    progress, timer = progress or NullProgress(), timer or NullTimer()
    geo, device, dtype = model.geometry, model.device, model.dtype
    rows = prefix.size(0)
    batch = rows // 2 if guidance.enabled else rows
    num_known = 0 if prefill is None else prefill.size(2)
    num_preds = [int(k) for k in mask_schedule(num_inference_steps, geo.num_tokens) if k > 0]

    time_embed = model.video_pos_embed.time_embedding(num_frames)
    video_space = model.video_pos_embed.space_embedding().to(device, dtype)
    image_space = model.image_space_embedding()
    capacity = prefix.size(1) + num_frames * geo.num_video_tokens
    cache = model.video_encoder.new_cache(rows, capacity, device=device, dtype=dtype)
    if fast:
        from . import sampling_fast
        from .schedulers import TensorScheduler

        tensor_scheduler = TensorScheduler.from_diffusers(scheduler, num_diffusion_steps, device)
        graphs = None

    def order_for_call():  # one random set order per call, drawn at the first generated frame
        return token_order(batch, geo.num_tokens, generator).to(device)

    frames, anchor, order = [], None, None
    progress.start(num_frames, num_known, len(num_preds))
    for t in range(num_frames):
        # Temporal encoder (causal): frame t attends to the prefix and frames < t via the cache.
        with timer("temporal"):
            tokens = model.frame_tokens(frames[-1] if frames else None, batch, time_embed, t, video_space)
            h = model.video_encoder(guidance.expand(tokens), prefix if t == 0 else None, cache)
            anchor = h if t == 0 else anchor
            mixer = model.video_encoder.mixer
            c = mixer(anchor, h) if (t > 0 and mixer is not None) else h

        if t < num_known:  # pre-filled frame: it only feeds the cache
            x = prefill[:, :, t].to(device, torch.float32).expand(batch, -1, -1, -1)
        elif fast:
            if order is None:
                order, plan, noise = sampling_fast.prepare(order_for_call(), num_preds, tensor_scheduler,
                                                           guidance, generator, geo, dtype,
                                                           model.image_decoder)
                if cuda_graphs:
                    kept = graph_cache if graph_cache is not None else sampling_fast.GraphCache()
                    graphs = sampling_fast.graphed_steps(kept, model, plan, tensor_scheduler, guidance, c,
                                                         image_space, noise.count)
            with timer("spatial+head") if graphs is not None else nullcontext():
                x = sampling_fast.sample_frame_fast(model, plan, tensor_scheduler, c, image_space, noise,
                                                    guidance, progress, t, graphs, timer)
        else:
            order = order_for_call() if order is None else order
            x = sample_frame(model, scheduler, c, order, num_preds, num_diffusion_steps,
                             guidance, generator, image_space, progress, t, timer)
        frames.append(x)
        progress.frame(t + 1)
    progress.close()
    return VideoSample(torch.stack(frames, dim=2), order)
