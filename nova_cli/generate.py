"""The pipeline calls behind t2i, t2v, i2v and each extend round, timed stage by stage.

One pipeline call does text encoding, sampling and the VAE decode, so that its low-memory mode can
move each component to the device for its stage only. The progress object marks the borders
(``start``: sampling begins, ``close``: sampling ends and the decode begins), so the sidecar gets a
time per stage and an out-of-memory error names the stage it happened in.
"""

from __future__ import annotations

import numpy as np

from .progress import Stages
from .settings import TRAINED_FRAMES


def latent_frames(frames: int) -> int:
    """1 + 4k video frames <-> 1 + k latent frames."""
    return 1 + (frames - 1) // 4


def length_warning(command: str, settings) -> str | None:
    """A note for a window longer than the checkpoint was trained on: what it costs, what to do instead.

    Sampling and the decode take time in proportion to the latent frames (the KV cache keeps each
    frame's cost flat), so the ratio to the trained 9 latent frames is the honest estimate before
    anything has run on this machine.
    """
    if command == "t2i" or settings.frames is None or settings.frames <= TRAINED_FRAMES:
        return None
    ratio = latent_frames(settings.frames) / latent_frames(TRAINED_FRAMES)
    if command == "extend":
        return (f"--frames {settings.frames}: each round sees a window longer than the {TRAINED_FRAMES} frames"
                f" the checkpoint was trained on: quality drops, and each round takes about {ratio:.1f}x as"
                f" long as with --frames {TRAINED_FRAMES} (more --steps make longer videos instead)")
    return (f"--frames {settings.frames} is beyond the {TRAINED_FRAMES} frames the checkpoint was trained on:"
            f" quality drops, and each video takes about {ratio:.1f}x as long as a {TRAINED_FRAMES}-frame one"
            f" ({latent_frames(settings.frames)} latent frames instead of {latent_frames(TRAINED_FRAMES)});"
            " nova extend is the way to longer videos")


def generator(seed: int):
    """Noise is drawn on the CPU, so one seed gives the same video on every device."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def generate(pipe, settings, prompt: str, num_latents: int, stages: Stages, progress, gen, *, image=None,
             latents=None, motion_flow=5.0) -> np.ndarray:
    """uint8 frames (F, H, W, 3) of one prompt; an image is F = 1."""
    stages.enter("prepare")
    try:
        out = pipe(
            prompt, negative_prompt=settings.negative_prompt or None,
            num_inference_steps=settings.ar_steps, num_diffusion_steps=settings.diffusion_steps,
            max_latent_length=num_latents, guidance_scale=settings.guidance,
            motion_flow=motion_flow,
            image=image, latents=latents, generator=gen, output_type="np", progress=progress,
        )
    finally:
        progress.stop_display()
    stages.stop()
    return out.frames[0] if out.frames is not None else out.images[0][None]


def text_to_image(pipe, settings, prompt, seed, stages, progress) -> np.ndarray:
    return generate(pipe, settings, prompt, 1, stages, progress, generator(seed))[0]


def text_to_video(pipe, settings, prompt, seed, stages, progress) -> np.ndarray:
    return generate(pipe, settings, prompt, latent_frames(settings.frames), stages, progress, generator(seed),
                    motion_flow=settings.flow)


def image_to_video(pipe, settings, prompt, seed, image: np.ndarray, stages, progress) -> np.ndarray:
    """Frame 0 of the output is the input image itself, not its VAE reconstruction."""
    frames = generate(pipe, settings, prompt, latent_frames(settings.frames), stages, progress,
                      generator(seed), image=image, motion_flow=settings.flow)
    frames[0] = image
    return frames
