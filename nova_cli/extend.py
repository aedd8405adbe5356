"""Extending a clip: the clip's last frames pre-fill the temporal KV cache, new latent frames follow.

The model sees a window of W latent frames at once (W from ``--frames``, 9 for 33 frames: the
length it was trained on). Each of ``--steps`` rounds:

1. takes the last 1 + 4(C-1) frames of the video so far (C = W - K context latent frames, fewer
   if the video is shorter) and VAE-encodes them, so the window starts, as every training clip
   did, with a single-frame latent;
2. pre-fills those C latent frames into the KV cache and samples K new ones (``--chunk``,
   default W // 2: 4 new latent frames = 16 new video frames per round for W = 9);
3. decodes the C + K latents together (the context gives the causal VAE its history) and keeps
   the last 4K frames.

Because the window slides, rounds never exceed the trained length, however long the video gets.
The output is the input clip (at 12 fps and the model's size) followed by the new frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nova_core.motion_flow import TRAINING_FPS

from . import media
from .errors import MediaError, UsageError
from .generate import generate, generator, latent_frames

MIN_FRAMES = 5  # frame 0 plus one 4-frame latent: less than that is an image (use i2v)


@dataclass(frozen=True)
class Window:
    latents: int  # W: latent frames per round, context + new
    chunk: int  # K: new latent frames per round

    @property
    def context(self) -> int:
        return self.latents - self.chunk

    @property
    def new_frames(self) -> int:
        return 4 * self.chunk


def window(settings) -> Window:
    total = latent_frames(settings.frames)
    chunk = total // 2 if settings.chunk == "auto" else settings.chunk
    if not 1 <= chunk < total:
        raise UsageError(f"--chunk {chunk}: must be 1..{total - 1}, fewer than the {total} latent frames of"
                         f" the {settings.frames}-frame window (raise --frames for larger chunks)")
    return Window(total, chunk)


def read_clip(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, float, str | None]:
    """The clip at 12 fps and the model's size; (frames, original fps, what was done to it)."""
    frames, fps = media.read_video(path)
    resampled = media.resample_fps(frames, fps, TRAINING_FPS)
    fitted, note = media.fit_to_size(resampled, size)
    if len(fitted) < MIN_FRAMES:
        raise MediaError(f"{path}: clip too short for extend: {len(fitted)} frame(s) at {TRAINING_FPS} fps,"
                         f" needs at least {MIN_FRAMES} (for a single frame use nova i2v)")
    if abs(fps - TRAINING_FPS) > 1e-3:
        resample_note = f"resampled {fps:g} fps to {TRAINING_FPS} fps"
        note = f"{resample_note}, {note}" if note else resample_note
    return fitted, fps, note


def extend_clip(pipe, settings, prompt: str, seed: int, clip: np.ndarray, flow: float, stages,
                progress_for) -> np.ndarray:
    """The clip followed by ``settings.steps`` rounds of new frames; ``progress_for(label)`` makes bars."""
    win, gen = window(settings), generator(seed)
    video = clip
    for round_index in range(settings.steps):
        context = min(win.context, latent_frames(len(video)))
        progress = progress_for(f"round {round_index + 1}/{settings.steps}")  # labels the stages too
        stages.enter("encode")
        known = pipe.encode_video(video[-(1 + 4 * (context - 1)):], gen)
        stages.stop()
        frames = generate(pipe, settings, prompt, context + win.chunk, stages, progress, gen,
                          latents=known, motion_flow=flow)
        video = np.concatenate([video, frames[-win.new_frames:]])
    return video
