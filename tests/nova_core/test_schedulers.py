"""TensorScheduler == diffusers' step, given the same noise."""

import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

from nova_core.schedulers import TensorScheduler, supports

DDPM = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
CONFIGS = [
    DDPMScheduler(**DDPM),  # tiny-t2v: epsilon, clip_sample, fixed_small
    DDPMScheduler(**DDPM, clip_sample=False, prediction_type="v_prediction"),
    DDPMScheduler(**DDPM, prediction_type="sample", variance_type="fixed_small_log"),
    DDPMScheduler(**DDPM, timestep_spacing="trailing", steps_offset=1),
    FlowMatchEulerDiscreteScheduler(shift=1.0),
    FlowMatchEulerDiscreteScheduler(shift=3.0),
]


@pytest.mark.parametrize("scheduler", CONFIGS, ids=lambda s: f"{type(s).__name__}")
@pytest.mark.parametrize("steps", [1, 4, 25])
def test_same_trajectory_as_diffusers(scheduler, steps):
    fast = TensorScheduler.from_diffusers(scheduler, steps)
    scheduler.set_timesteps(steps)
    assert torch.equal(fast.timesteps, scheduler.timesteps)
    torch.manual_seed(0)
    x_ref = x_fast = torch.randn(2, 4, 8, 12)
    g_ref, g_fast = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for j, t in enumerate(scheduler.timesteps):
        out = torch.randn(2, 4, 8, 12)
        x_ref = scheduler.step(out, t, x_ref, generator=g_ref).prev_sample
        noise = torch.randn(2, 4, 8, 12, generator=g_fast) if fast.draws_noise[j] else None
        x_fast = fast.step(j, x_fast, out, noise)
        torch.testing.assert_close(x_fast, x_ref, atol=1e-6, rtol=1e-6)
    assert torch.equal(g_ref.get_state(), g_fast.get_state())  # the same numbers were drawn


def test_unsupported_configurations_are_declined():
    assert not supports(DDPMScheduler(thresholding=True))
    assert not supports(FlowMatchEulerDiscreteScheduler(stochastic_sampling=True))
    with pytest.raises(ValueError, match="no tensor form"):
        TensorScheduler.from_diffusers(DDPMScheduler(thresholding=True), 4)
