"""The NOVA training objective: teacher-forced temporal encoder, masked spatial encoder, and the
per-token diffusion loss on the checkpoint's own noise scheduler.

For a batch of clips (B, C, T, h, w):

1. the temporal encoder runs once over [text (+ motion) prefix, BOV, frames 0..T-2] with the
   block-causal mask, giving each frame its condition from the true earlier frames (the same
   numbers the KV-cached generation loop computes, ``NOVATransformer3DModel.temporal_conditions``);
2. each frame row hides a random share of its tokens (:mod:`.masking`) and the spatial encoder
   sees the condition and the visible tokens, exactly as in a set-by-set generation step;
3. every token is noised ``loss_repeat`` times with independent noise and timesteps, and the
   diffusion head predicts the scheduler's target (DDPM: epsilon / v / x0; flow matching:
   noise - x); the squared error counts only at hidden tokens.

The module returns *sums* of per-token losses for frame 0 (text-to-image) and for later frames
(image-to-image); the trainer divides by the number of hidden tokens of the whole global batch,
so splitting a batch over processes or micro-steps does not change the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from ..patches import patchify, unpatchify


class NoiseSchedule:
    """Forward noising for training, taken from the checkpoint's diffusers scheduler config.

    Timesteps are drawn per token: DDPM uniformly over its training timesteps; flow matching as
    sigmoid(N(0, 1)) over the scheduler's (shifted) sigma table, like the reference trainer.
    """

    def __init__(self, scheduler):
        self.scheduler = type(scheduler).from_config(scheduler.config)  # private copy: add_noise moves state
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        if hasattr(self.scheduler, "set_shift"):  # FlowMatchEulerDiscreteScheduler
            self.kind, self.prediction = "flow", "velocity"
            self.sigmas = self.scheduler.sigmas.float()
            self.timesteps = self.scheduler.timesteps.float()
        elif hasattr(self.scheduler, "alphas_cumprod") and hasattr(self.scheduler, "add_noise"):
            self.kind, self.prediction = "ddpm", self.scheduler.config.prediction_type
            if self.prediction not in ("epsilon", "v_prediction", "sample"):
                raise CheckpointError(f"scheduler prediction_type {self.prediction!r} is not trainable here")
        else:
            raise CheckpointError(f"training needs a DDPM-style or flow-matching scheduler, "
                                  f"not {type(scheduler).__name__}")

    def sample_indices(self, generator, shape) -> torch.Tensor:
        """int64 indices: DDPM timesteps, or positions in the flow sigma table."""
        if self.kind == "ddpm":
            return torch.randint(0, self.num_train_timesteps, shape, generator=generator)
        u = torch.randn(shape, generator=generator).sigmoid()
        return (u * self.num_train_timesteps).long().clamp_(max=self.num_train_timesteps - 1)

    def noise(self, x, noise, indices):
        """Tokens x (..., F), noise like x, indices (...) -> (noisy x, head timesteps, target)."""
        if self.kind == "flow":
            sigma = self.sigmas.to(x.device)[indices].unsqueeze(-1).to(x.dtype)
            timestep = self.timesteps.to(x.device)[indices]
            return sigma * noise + (1 - sigma) * x, timestep, noise - x
        flat = (x.reshape(-1, x.size(-1)), noise.reshape(-1, x.size(-1)), indices.reshape(-1))
        noisy = self.scheduler.add_noise(*flat).view_as(x)
        if self.prediction == "epsilon":
            target = noise
        elif self.prediction == "v_prediction":
            target = self.scheduler.get_velocity(*flat).view_as(x)
        else:
            target = x
        return noisy, indices, target


def token_weights(tokens: torch.Tensor, strength: float) -> torch.Tensor:
    """(R, N, F) tokens -> (R, N) loss weights 1 + strength * min(1, RMS distance from the row's median
    token): what differs from a frame's plain background counts more (``train.rare_token_weight``)."""
    distance = (tokens - tokens.median(dim=1, keepdim=True).values).pow(2).mean(dim=-1).sqrt()
    return 1 + strength * distance.clamp(max=1)


class TrainingObjective(nn.Module):
    """One micro-batch -> (sum of frame-0 token losses, sum of later-frame token losses).

    A module so DistributedDataParallel / FSDP can wrap it; the transformer is its only child.
    """

    def __init__(self, transformer, schedule: NoiseSchedule, loss_repeat: int = 4, rare_token_weight: float = 0.0):
        super().__init__()
        self.transformer, self.schedule, self.loss_repeat = transformer, schedule, loss_repeat
        self.rare_token_weight = rare_token_weight

    def forward(self, latents, text_hidden, text_lengths, motion_flow, known_ids, known_lengths, mask,
                noise, timestep_indices):
        """latents (B, C, T, h, w) scaled; text_hidden (B, L, Dt) + lengths (B,) (0 = dropped caption);
        motion_flow (B,); known_ids (BT, k, 1), known_lengths (BT,), mask (BT, N, 1) for the
        B*T frame rows (clip-major); noise (R*BT, N, p*p*C) and timestep_indices (R*BT, N)."""
        model = self.transformer
        geo = model.geometry
        batch, channels, num_frames = latents.shape[:3]
        text = model.text_embed.pad(text_hidden, text_lengths.tolist())
        prefix = model.prefix(text, motion_flow if model.motion_embed is not None else None)
        cond = model.temporal_conditions(prefix, latents.to(model.dtype)).flatten(0, 1)  # (BT, Nv, D)

        frames = latents.transpose(1, 2).flatten(0, 1)  # (BT, C, h, w)
        tokens = model.image_encoder.patch_embed(frames.to(model.dtype))
        hidden = mask.to(tokens.dtype)
        tokens = tokens * (1 - hidden) + model.mask_embed.mask_token * hidden
        z = model.image_encoder(tokens, cond, known_ids, model.image_space_embedding(), known_lengths)

        p, grid = geo.patch_size, (geo.latent_size[0] // geo.patch_size, geo.latent_size[1] // geo.patch_size)
        repeat = self.loss_repeat
        clean = patchify(frames.float(), p)  # (BT, N, F)
        x = clean.repeat(repeat, 1, 1)
        noisy, timestep, target = self.schedule.noise(x, noise.float(), timestep_indices)
        pred = model.image_decoder(unpatchify(noisy, p, grid).to(model.dtype), timestep, z.repeat(repeat, 1, 1))
        loss = (pred.float() - target).pow(2).mean(dim=-1)  # (R*BT, N)
        weight = mask.view(1, batch, num_frames, -1).float()
        if self.rare_token_weight:
            weight = weight * token_weights(clean, self.rare_token_weight).view_as(weight)
        loss = loss.view(repeat, batch, num_frames, -1) * weight
        return loss[:, :, :1].sum(), loss[:, :, 1:].sum()
