"""A diffusers scheduler's update rule, precomputed per step as tensors for the fast path.

diffusers' ``step`` indexes its tables with Python scalars and draws its own noise, so it cannot
run inside a CUDA graph and it needs the host at every step. The coefficients of a fixed number of
steps are known before sampling starts, so we read them off the *same* diffusers scheduler (its
timesteps, ``alphas_cumprod``, sigmas) once, and apply the identical formulas with noise supplied
by the caller (drawn in the reference's order). ``supports`` says which configurations this covers;
the plain path handles every other one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def supports(scheduler) -> bool:
    name, config = type(scheduler).__name__, scheduler.config
    if name == "DDPMScheduler":
        return (not config.thresholding and config.prediction_type in ("epsilon", "sample", "v_prediction")
                and config.variance_type in ("fixed_small", "fixed_small_log"))
    if name == "FlowMatchEulerDiscreteScheduler":
        return not config.stochastic_sampling
    return False


@dataclass
class TensorScheduler:
    """Per-step coefficients; ``step(j, x, out, noise)`` == diffusers' j-th ``step`` given that noise."""

    kind: str  # "ddpm" or "flow"
    timesteps: torch.Tensor  # (S,) as diffusers has them (CPU)
    draws_noise: list[bool]  # DDPM draws one canvas of noise at every step with t > 0
    coeffs: list[tuple[torch.Tensor, ...]]  # 0-d tensors on the target device
    prediction_type: str = "flow"
    clip_range: float | None = None
    signature: tuple = ()  # every value the update rule uses, as floats (what a CUDA graph bakes in)

    @classmethod
    def from_diffusers(cls, scheduler, num_steps: int, device=None) -> "TensorScheduler":
        if not supports(scheduler):
            raise ValueError(f"no tensor form for {type(scheduler).__name__} with this config")
        scheduler.set_timesteps(num_steps)
        timesteps = scheduler.timesteps.clone()
        if type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler":
            sigmas = scheduler.sigmas
            deltas = [sigmas[j + 1] - sigmas[j] for j in range(num_steps)]
            return cls("flow", timesteps, [False] * num_steps, [(d.to(device),) for d in deltas],
                       signature=_signature("flow", timesteps, [(d,) for d in deltas]))
        config, coeffs, draws = scheduler.config, [], []
        for t in timesteps:
            prev_t = scheduler.previous_timestep(t)
            alpha_prod_t = scheduler.alphas_cumprod[t]
            alpha_prod_t_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.one
            beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
            current_alpha_t = alpha_prod_t / alpha_prod_t_prev
            current_beta_t = 1 - current_alpha_t
            original_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
            sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
            std = torch.zeros(())
            if t > 0:
                variance = scheduler._get_variance(t)
                std = variance if config.variance_type == "fixed_small_log" else variance ** 0.5
            draws.append(bool(t > 0))
            coeffs.append((beta_prod_t ** (0.5), alpha_prod_t ** (0.5), original_coeff, sample_coeff, std))
        clip = config.clip_sample_range if config.clip_sample else None
        return cls("ddpm", timesteps, draws, [tuple(c.to(device) for c in cs) for cs in coeffs],
                   config.prediction_type, clip,
                   signature=_signature("ddpm", timesteps, coeffs, config.prediction_type, clip, draws))

    def step(self, j: int, x: torch.Tensor, out: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "flow":
            return x + self.coeffs[j][0] * out
        sqrt_beta, sqrt_alpha, original_coeff, sample_coeff, std = self.coeffs[j]
        original = original_sample(self.prediction_type, x, out, sqrt_alpha, sqrt_beta)
        if self.clip_range is not None:
            original = original.clamp(-self.clip_range, self.clip_range)
        prev = original_coeff * original + sample_coeff * x
        return prev + std * noise if self.draws_noise[j] else prev


def original_sample(prediction_type: str, x, out, sqrt_alpha, sqrt_beta):
    """DDPM's estimate of the clean sample from x_t and the model's output of ``prediction_type``."""
    if prediction_type == "epsilon":
        return (x - sqrt_beta * out) / sqrt_alpha
    if prediction_type == "v_prediction":
        return sqrt_alpha * x - sqrt_beta * out
    return out


def _signature(kind, timesteps, coeffs, *rest) -> tuple:
    """Host-side values of a schedule (read before they move to the device: no sync)."""
    return (kind, tuple(float(t) for t in timesteps), tuple(tuple(float(c) for c in cs) for cs in coeffs),
            *(tuple(r) if isinstance(r, list) else r for r in rest))
