"""The fast path computes the plain path's function: same order, same draws, same numbers."""

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


@pytest.mark.parametrize("checkpoint, setting", CASES, ids=lambda s: ",".join(s) if isinstance(s, dict) else s)
def test_fast_equals_plain_in_float32(checkpoint, setting):
    p = pipe(TINY_T2V if checkpoint == "t2v" else TINY_T2I)
    extra = dict(max_latent_length=3) if checkpoint == "t2v" else {}
    plain, fast = run(p, False, **setting, **extra), run(p, True, **setting, **extra)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


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


def test_fast_path_with_prefill_and_image():
    p = pipe(TINY_T2V)
    image = torch.randint(0, 256, (64, 96, 3), dtype=torch.uint8).numpy()
    a = run(p, False, image=image, max_latent_length=3)
    b = run(p, True, image=image, max_latent_length=3)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


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
