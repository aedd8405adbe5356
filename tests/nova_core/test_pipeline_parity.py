"""End-to-end parity with the reference outputs (cases t2i, t2v, i2v) on the tiny checkpoints."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import CASES, REFERENCE, load_case

SKIP_ARGS = ("image_guidance_scale", "spatiotemporal_guidance_scale", "disable_progress_bar")
PIPES = {}


def pipeline(checkpoint):
    from nova_core import NOVAPipeline

    if checkpoint not in PIPES:
        PIPES[checkpoint] = NOVAPipeline.from_pretrained(str(REFERENCE / checkpoint))
    return PIPES[checkpoint]


def run(case, output_type, **extra):
    ref, meta = load_case(case)
    args = {k: v for k, v in meta["pipeline_call_args"].items() if k not in SKIP_ARGS}
    if case == "i2v":
        args["image"] = np.asarray(Image.open(CASES / "i2v_input.png").convert("RGB"))
    args.update(extra)
    out = pipeline(meta["checkpoint"])(**args, generator=torch.Generator().manual_seed(meta["seed"]),
                                       output_type=output_type, disable_progress_bar=True)
    return out, ref, meta


def assert_close(actual, expected):
    actual = torch.as_tensor(actual).float()
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("fast", [None, False], ids=["default", "plain"])
@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
def test_latents(case, fast):
    """The default (fast) path and the plain loop (``fast=False``) both match the reference."""
    out, ref, _ = run(case, "latent", fast=fast)
    assert out.images is None
    assert_close(out.frames, ref["latents"])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
def test_decoded(case):
    out, ref, _ = run(case, "pt")
    decoded = out.images if case == "t2i" else out.frames
    assert (out.frames is None) == (case == "t2i")
    assert_close(decoded, ref["decoded"])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
def test_pixels(case):
    out, ref, _ = run(case, "np")
    pixels = out.images if case == "t2i" else out.frames
    assert isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8
    assert pixels.shape == tuple(ref["pixels"].shape)
    diff = np.abs(pixels.astype(np.int16) - ref["pixels"].numpy().astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3


@pytest.mark.slow
def test_i2v_frame0_is_the_encoded_input_image():
    out, ref, _ = run("i2v", "latent")
    assert torch.equal(ref["input_image"], torch.from_numpy(np.array(Image.open(CASES / "i2v_input.png").convert("RGB"))))
    assert_close(out.frames[:, :, 0], ref["latents"][:, :, 0])


@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
def test_token_order_schedule_and_timesteps(case):
    """pred_ids, num_preds and the scheduler's timesteps/sigmas are exact."""
    from nova_core.sampling import mask_schedule, token_order

    ref, meta = load_case(case)
    args = meta["pipeline_call_args"]
    pipe = pipeline(meta["checkpoint"])
    num_tokens = pipe.transformer.geometry.num_tokens
    assert np.array_equal(mask_schedule(args["num_inference_steps"], num_tokens), ref["num_preds"].numpy())
    generator = torch.Generator().manual_seed(meta["seed"])
    if case == "i2v":  # the posterior sample of the input image comes first
        pipe.encode_image(ref["input_image"].numpy(), generator)
    assert torch.equal(token_order(1, num_tokens, generator), ref["pred_ids"])
    scheduler = pipe._fresh_scheduler(args["flow_shift"])
    scheduler.set_timesteps(args["num_diffusion_steps"])
    assert torch.equal(scheduler.timesteps, ref["scheduler_timesteps"])
    if "scheduler_sigmas" in ref:
        assert torch.equal(scheduler.sigmas, ref["scheduler_sigmas"])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
def test_output_types_pil(case):
    out, ref, _ = run(case, "pil")
    if case == "t2i":
        assert len(out.images) == 1 and out.images[0].size == (64, 64)
    else:
        assert len(out.frames) == 1 and len(out.frames[0]) == 9 and out.frames[0][0].size == (96, 64)
