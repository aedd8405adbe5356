"""The fast path computes the plain path's function: same order, same draws, same numbers."""

import math

import pytest
import torch

from nova_core import NOVAPipeline
from nova_core.timing import StageTimer
from tests.conftest import TINY_T2I, TINY_T2V

PIPES = {}


def pipe(path, dtype=torch.float32):
    key = (str(path), dtype)
    if key not in PIPES:
        PIPES[key] = NOVAPipeline.from_pretrained(str(path), torch_dtype=dtype)
    return PIPES[key]


def run(p, fast, **kw):
    args = dict(prompt=["fireworks over the city", "a cat"], num_inference_steps=6, num_diffusion_steps=4,
                output_type="latent", disable_progress_bar=True)
    args.update(kw)
    return p(**args, generator=torch.Generator().manual_seed(7), fast=fast).frames


SETTINGS = [{}, dict(guidance_trunc=600), dict(guidance_renorm=0.3), dict(guidance_scale=1),
            dict(num_images_per_prompt=2)]
CASES = [(ck, s) for ck in ("t2v", "t2i") for s in SETTINGS] + [("t2i", dict(flow_shift=3.0))]


def float32_tolerance(p, plain, num_diffusion_steps=4, guidance_scale=5.0) -> float:
    """How far two float32 evaluations of the same function in different summation orders may
    drift apart, relative to the latents' magnitude (not per element: rounding enters through
    matmuls and attention, which mix every element with the others).

    * One evaluation of the network rounds each dot product of length n with an error of about
      sqrt(n) unit roundoffs u = 2**-24 of its magnitude (random-walk accumulation; n is the
      model's longest dot product), and a prediction passes L blocks (temporal + spatial + head),
      whose errors add up as another random walk: sqrt(L). The fast path sums in another order
      (token layout, gathered rows, fused scheduler coefficients), and kernels and CPUs differ,
      so only this size is fixed, not the digits.
    * Classifier-free guidance returns uncond + s (cond - uncond): errors scale by s + |s - 1|.
    * A DDPM step turns the predicted noise into x0 = (x_t - sqrt(1 - a) eps) / sqrt(a): errors in
      eps grow by sqrt((1 - a) / a), largest at the first timestep (about 15 on the tiny
      checkpoint); flow matching steps x by (sigma' - sigma) v, no growth.
    * Each of the diffusion steps adds its own error (the posterior mean passes x_t on with a
      coefficient <= 1); earlier frames enter later ones only through LayerNorm-ed conditions.

    On the tiny checkpoints (n = 256, L = 8 and 8, DDPM growth 4.1) this is 4.0e-4 for t2v (latents
    within +-1) and 3.6e-4 for t2i (|latents| <= 3.7) with guidance 5, ten times less without;
    measured differences are 0 to 1.2e-5 depending on the machine; a wrong draw or token is >= 1e-2.
    """
    n = max(m.in_features for m in p.transformer.modules() if isinstance(m, torch.nn.Linear))
    geo = p.transformer.geometry
    blocks = geo.temporal.depth + geo.spatial.depth + geo.head.depth
    scheduler = p._fresh_scheduler(None)
    growth = 1.0
    if hasattr(scheduler, "alphas_cumprod"):
        scheduler.set_timesteps(num_diffusion_steps)
        a = scheduler.alphas_cumprod[scheduler.timesteps.long()]
        growth = float(((1 - a) / a).sqrt().max())
    cfg = guidance_scale + abs(guidance_scale - 1) if guidance_scale > 1 else 1.0
    u = 2.0 ** -24
    return num_diffusion_steps * growth * cfg * math.sqrt(n * blocks) * u * float(plain.abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint, setting", CASES, ids=lambda s: ",".join(s) if isinstance(s, dict) else s)
def test_fast_equals_plain_in_float32(checkpoint, setting):
    p = pipe(TINY_T2V if checkpoint == "t2v" else TINY_T2I)
    extra = dict(max_latent_length=3) if checkpoint == "t2v" else {}
    plain, fast = run(p, False, **setting, **extra), run(p, True, **setting, **extra)
    tolerance = float32_tolerance(p, plain, guidance_scale=setting.get("guidance_scale", 5.0))
    torch.testing.assert_close(fast, plain, atol=tolerance, rtol=0)


def test_fast_is_the_default_on_every_device_and_plain_stays_reachable(monkeypatch):
    """On the CPU too: ``fast=None`` takes sampling_fast, ``fast=False`` the plain loop, and a
    scheduler without a tensor form (DDPM with thresholding) falls back to the plain loop."""
    from diffusers import DDPMScheduler

    from nova_core import sampling_fast

    calls = []
    original = sampling_fast.sample_frame_fast
    monkeypatch.setattr(sampling_fast, "sample_frame_fast", lambda *a, **k: calls.append(1) or original(*a, **k))
    p = pipe(TINY_T2V)
    default = run(p, None, max_latent_length=2)
    assert len(calls) == 2
    torch.testing.assert_close(default, run(p, True, max_latent_length=2), atol=0, rtol=0)
    run(p, False, max_latent_length=2)
    assert len(calls) == 4
    thresholded = NOVAPipeline(p.transformer, DDPMScheduler.from_config(p.scheduler.config, thresholding=True),
                               p.vae, p.text_encoder, p.tokenizer)
    run(thresholded, None, max_latent_length=2)
    assert len(calls) == 4


@pytest.mark.slow
def test_fast_path_with_prefill_and_image():
    p = pipe(TINY_T2V)
    image = torch.randint(0, 256, (64, 96, 3), dtype=torch.uint8).numpy()
    a = run(p, False, image=image, max_latent_length=3)
    b = run(p, True, image=image, max_latent_length=3)
    torch.testing.assert_close(b, a, atol=float32_tolerance(p, a), rtol=0)


def test_the_float32_tolerance_is_far_below_a_real_difference():
    """The derived tolerance must still catch a bug: another seed (other draws) is far outside it."""
    p = pipe(TINY_T2V)
    plain = run(p, False, max_latent_length=2)
    other = p(["fireworks over the city", "a cat"], num_inference_steps=6, num_diffusion_steps=4, max_latent_length=2,
              output_type="latent", disable_progress_bar=True, generator=torch.Generator().manual_seed(8),
              fast=False).frames
    tolerance = float32_tolerance(p, plain)
    assert 1e-4 < tolerance < 1e-3
    assert (other - plain).abs().max() > 100 * tolerance


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_fast_path_is_close_to_float32_plain(dtype):
    """Metric: max |latent difference| relative to the float32 latents' max magnitude.

    Measured on the tiny random checkpoint: 0.035 (float16), 0.22 (bfloat16, 3 fewer mantissa
    bits, so ~8x float16's error); the set order and every random draw are identical.
    """
    ref = run(pipe(TINY_T2V), False, max_latent_length=2)
    half = run(pipe(TINY_T2V, dtype), True, max_latent_length=2).float()
    relative = ((half - ref).abs().max() / ref.abs().max()).item()
    print(f"{dtype}: max relative latent difference {relative:.3g}")
    assert relative < (0.05 if dtype == torch.float16 else 0.3)


def test_stage_timer_sees_every_stage():
    p = pipe(TINY_T2V)
    timer = StageTimer("cpu")
    p("a dog", max_latent_length=2, num_inference_steps=3, num_diffusion_steps=2, output_type="pt",
      disable_progress_bar=True, timer=timer, fast=False)
    counts = timer.counts()
    assert counts["text"] == 1 and counts["temporal"] == 2 and counts["vae_decode"] == 1
    assert counts["spatial"] == counts["head"] == 2 * 3
    assert all(v >= 0 for v in timer.totals().values())


@pytest.mark.slow
def test_low_memory_mode_gives_the_same_result_on_the_cpu():
    """Offloading moves components between stages only; below the tile size nothing is tiled."""
    p = pipe(TINY_T2V)
    ref = run(p, False, max_latent_length=2, output_type="pt")
    low = NOVAPipeline.from_pretrained(str(TINY_T2V)).enable_low_memory("cpu")
    assert low.vae.tiling == (32, 8) and low.execution_device.type == "cpu"
    assert torch.equal(run(low, False, max_latent_length=2, output_type="pt"), ref)
    low.to("cpu")
    assert low._execution_device is None


def test_cuda_graphs_need_cuda():
    from nova_core.errors import InputError

    with pytest.raises(InputError, match="cuda_graphs"):
        run(pipe(TINY_T2I), True, cuda_graphs=True)
