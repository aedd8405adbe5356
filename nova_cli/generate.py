"""The pipeline calls behind t2i, t2v and i2v: sample latents, then decode, timed stage by stage.

Sampling and decoding are separate calls (``output_type="latent"`` then ``decode_latents``) so
that each has its own time in the sidecar, an out-of-memory error names the right one, and what
sampling used is freed before the VAE decodes (the one OOM report against NOVA was in the decode).
"""

from __future__ import annotations

import numpy as np

from .progress import Stages
from .runtime import free_memory


def latent_frames(frames: int) -> int:
    """1 + 4k video frames <-> 1 + k latent frames."""
    return 1 + (frames - 1) // 4


def generator(seed: int):
    """Noise is drawn on the CPU, so one seed gives the same video on every device."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def sample(pipe, settings, prompt: str, seed: int, num_latents: int, stages: Stages, progress, *,
           image=None, latents=None, motion_flow=None, generator_=None):
    """Latents (1, C, T, h, w) of one prompt; 'prepare' (text/image encoding) then 'sample'."""
    stages.enter("prepare")
    try:
        out = pipe(
            prompt, negative_prompt=settings.negative_prompt or None,
            num_inference_steps=settings.ar_steps, num_diffusion_steps=settings.diffusion_steps,
            max_latent_length=num_latents, guidance_scale=settings.guidance,
            motion_flow=5.0 if motion_flow is None else motion_flow,
            image=image, latents=latents, generator=generator_ or generator(seed),
            output_type="latent", progress=progress,
        )
    finally:
        progress.close()
    stages.stop()
    return out.frames  # latents are (B, C, T, h, w) for images too


def decode(pipe, latents, stages: Stages) -> np.ndarray:
    """Scaled latents (1, C, T, h, w) -> uint8 frames (F, H, W, 3); an image is F = 1."""
    import torch

    free_memory()
    stages.enter("decode")
    pixels = pipe.decode_latents(latents)
    if pixels.dim() == 4:  # image VAE: (1, 3, H, W)
        pixels = pixels.unsqueeze(2)
    frames = (pixels[0].float() * 127.5 + 127.5).clamp(0, 255).to(torch.uint8).movedim(0, -1)
    stages.stop()
    return frames.cpu().numpy()


def text_to_image(pipe, settings, prompt, seed, stages, progress) -> np.ndarray:
    latents = sample(pipe, settings, prompt, seed, 1, stages, progress)
    return decode(pipe, latents, stages)[0]


def text_to_video(pipe, settings, prompt, seed, stages, progress) -> np.ndarray:
    latents = sample(pipe, settings, prompt, seed, latent_frames(settings.frames), stages, progress,
                     motion_flow=settings.flow)
    return decode(pipe, latents, stages)


def image_to_video(pipe, settings, prompt, seed, image: np.ndarray, stages, progress) -> np.ndarray:
    """Frame 0 of the output is the input image itself, not its VAE reconstruction."""
    latents = sample(pipe, settings, prompt, seed, latent_frames(settings.frames), stages, progress,
                     image=image, motion_flow=settings.flow)
    frames = decode(pipe, latents, stages)
    frames[0] = image
    return frames
