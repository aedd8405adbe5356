"""Data order and batches: which items a step trains on, and every random draw of a sample.

Reproducibility is by construction rather than by saved generator state: the items of a step
depend only on (seed, step), and each sample's randomness (its latent draw, caption dropout,
masks, noise, timesteps) comes from generators seeded with (seed, step, position in the global
batch, purpose). So a run resumed at step s, or split over any number of processes or
micro-steps, draws exactly the numbers an uninterrupted single-process run draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .masking import draw_masks, draw_num_known, spatial_inputs

LATENT, CAPTION, MASK, NOISE, TIMESTEP = range(5)  # purposes of the per-sample generators


def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integers, well mixed (neighbouring keys are unrelated)."""
    state = np.random.SeedSequence([int(k) % 2**32 for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


class BatchPlan:
    """The global batch of every step.

    Items are grouped by latent length (a batch holds one length); each epoch every group is
    shuffled with the run's seed and cut into batches (the last one filled up from the group's
    start, so no item is left out), and the epoch's batches are shuffled.
    """

    def __init__(self, latent_frames: list[int], batch_size: int, seed: int):
        self.batch_size, self.seed = batch_size, seed
        self.groups = {}
        for index, length in enumerate(latent_frames):
            self.groups.setdefault(length, []).append(index)
        self.batches_per_epoch = sum(-(-len(g) // batch_size) for g in self.groups.values())
        self._epoch, self._batches = None, None

    def epoch_of(self, step: int) -> int:
        return step // self.batches_per_epoch

    def batch(self, step: int) -> list[int]:
        epoch = self.epoch_of(step)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._epoch_batches(epoch)
        return self._batches[step % self.batches_per_epoch]

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for length in sorted(self.groups):
            group = rng.permutation(self.groups[length])
            count = -(-len(group) // self.batch_size) * self.batch_size
            filled = [int(group[i % len(group)]) for i in range(count)]
            batches += [filled[i : i + self.batch_size] for i in range(0, count, self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class SampleSettings:
    """What a sample's draws depend on besides the seeds."""

    num_tokens: int  # spatial tokens per frame
    token_dim: int  # p * p * C
    loss_repeat: int = 4
    mask_ratio: tuple = (0.7, 1.0)
    mask_std: float = 0.25
    full_mask_share: float = 0.0
    caption_dropout: float = 0.1


@dataclass
class TrainBatch:
    """A micro-batch on the CPU: model inputs (``tensors``) and the captions to encode."""

    captions: list[str]
    dropped: list[bool]
    text_rows: list  # cached Phi rows per sample, or None
    tensors: dict = field(default_factory=dict)

    def to(self, device) -> dict:
        return {k: v.to(device) for k, v in self.tensors.items()}


class BatchMaker:
    """Cache items + seeds -> :class:`TrainBatch` for a step's positions."""

    def __init__(self, cache, schedule, settings: SampleSettings, seed: int):
        self.cache, self.schedule, self.settings, self.seed = cache, schedule, settings, seed
        self.scaling = float(cache.header["checkpoint"]["scaling_factor"])
        self.shift = cache.header["checkpoint"].get("shift_factor") or 0.0

    def masks(self, step: int, position: int, num_frames: int, counts_only: bool = False):
        s = self.settings
        draw = draw_num_known if counts_only else draw_masks
        return draw(generator(self.seed, step, position, MASK), num_frames, s.num_tokens, *s.mask_ratio, s.mask_std,
                    s.full_mask_share)

    def hidden_counts(self, step: int, items: list[int]) -> tuple[int, int]:
        """Hidden tokens of frame 0 and of later frames over a whole global batch (x loss_repeat).
        Every process computes it for all samples (cheap: only the mask ratios are drawn)."""
        first = rest = 0
        for position, index in enumerate(items):
            known = self.masks(step, position, self.cache.items[index]["latent_frames"], counts_only=True)
            masked = self.settings.num_tokens - known
            first, rest = first + int(masked[0]), rest + int(masked[1:].sum())
        return first * self.settings.loss_repeat, rest * self.settings.loss_repeat

    def make(self, step: int, items: list[int], positions: list[int]) -> TrainBatch:
        s = self.settings
        latents, flows, masks, noises, indices = [], [], [], [], []
        captions, dropped, text_rows = [], [], []
        for index, position in zip(items, positions):
            item, tensors = self.cache.items[index], self.cache.tensors(index)
            mean, logvar = tensors["mean"].float(), tensors["logvar"].float()
            std = torch.exp(0.5 * logvar.clamp(-30, 20))
            sample = mean + std * torch.randn(mean.shape, generator=generator(self.seed, step, position, LATENT))
            latents.append((sample - self.shift) * self.scaling)
            drop = bool(torch.rand((), generator=generator(self.seed, step, position, CAPTION)) < s.caption_dropout)
            captions.append(item["caption"])
            dropped.append(drop)
            text_rows.append(tensors.get("text"))
            flows.append(float(item.get("motion_flow", 0.0)))
            num_frames = mean.size(1)
            masks.append(self.masks(step, position, num_frames))
            shape = (s.loss_repeat, num_frames, s.num_tokens)
            noises.append(torch.randn(shape + (s.token_dim,), generator=generator(self.seed, step, position, NOISE)))
            indices.append(self.schedule.sample_indices(generator(self.seed, step, position, TIMESTEP), shape))
        known_ids, known_lengths, mask = spatial_inputs(masks)
        tensors = {
            "latents": torch.stack(latents),
            "motion_flow": torch.tensor(flows, dtype=torch.float32),
            "known_ids": known_ids, "known_lengths": known_lengths, "mask": mask,
            # (R, B, T, ...) -> rows repeat-major, then clip, then frame (the objective's layout)
            "noise": torch.stack(noises, dim=1).flatten(0, 2),
            "timestep_indices": torch.stack(indices, dim=1).flatten(0, 2),
        }
        return TrainBatch(captions, dropped, text_rows, tensors)


class CaptionEncoder:
    """Captions -> Phi rows for the objective: (hidden (B, L, Dt), lengths (B,)).

    Rows come from the cache when ``nova prepare --text-embeddings`` stored them, else from the
    frozen text encoder here. A dropped caption gets length 0, i.e. only the learned padding
    rows: exactly the empty prompt that classifier-free guidance uses as its negative.
    """

    def __init__(self, num_tokens: int, token_dim: int, tokenizer=None, text_encoder=None):
        self.num_tokens, self.token_dim = num_tokens, token_dim
        self.tokenizer, self.text_encoder = tokenizer, text_encoder

    @torch.no_grad()
    def __call__(self, batch: TrainBatch, device):
        from ..text import encode_prompts

        hidden = torch.zeros(len(batch.captions), self.num_tokens, self.token_dim)
        lengths = [0] * len(batch.captions)
        live = [i for i, (rows, drop) in enumerate(zip(batch.text_rows, batch.dropped))
                if rows is None and not drop]
        if live:
            if self.text_encoder is None:
                raise RuntimeError("captions need the text encoder, but none was loaded")
            encoded, live_lengths = encode_prompts(self.tokenizer, self.text_encoder,
                                                   [batch.captions[i] for i in live], self.num_tokens)
            for j, i in enumerate(live):
                hidden[i], lengths[i] = encoded[j].cpu(), live_lengths[j]
        for i, (rows, drop) in enumerate(zip(batch.text_rows, batch.dropped)):
            if rows is not None and not drop:
                n = min(rows.size(0), self.num_tokens)
                hidden[i, :n], lengths[i] = rows[:n].float(), n
        return hidden.to(device), torch.tensor(lengths, device=device)
