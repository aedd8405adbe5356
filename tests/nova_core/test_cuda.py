"""The CUDA path run for real: the reference cases, fast == plain == graphs, graph reuse, devices.

Float32 comparisons run with TF32 off (cuDNN convolutions default to TF32 on Ampere and newer,
which alone moves the plain path by ~1e-3); ``tests/nova_core/test_devices.py`` covers on the CPU
what can be checked without a GPU.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from nova_core.devices import tf32
from tests.conftest import CASES, REFERENCE, load_case
from tests.nova_core.test_pipeline_parity import SKIP_ARGS

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def exact_float32():
    with tf32(False):
        yield


def pipeline(checkpoint, dtype=torch.float32, device="cuda"):
    from nova_core import NOVAPipeline

    return NOVAPipeline.from_pretrained(str(REFERENCE / checkpoint), torch_dtype=dtype).to(device)


def run_case(case, dtype=torch.float32, pipe=None, **extra):
    """(latents float32 on the CPU, reference latents) of a reference case on CUDA."""
    ref, meta = load_case(case)
    pipe = pipe or pipeline(meta["checkpoint"], dtype)
    args = {k: v for k, v in meta["pipeline_call_args"].items() if k not in SKIP_ARGS}
    if case == "i2v":
        args["image"] = np.asarray(Image.open(CASES / "i2v_input.png").convert("RGB"))
    args.update(extra)
    out = pipe(**args, generator=torch.Generator().manual_seed(meta["seed"]), output_type="latent",
               disable_progress_bar=True)
    return out.frames.float().cpu(), ref["latents"]


@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
@pytest.mark.parametrize("fast", [False, True])
def test_cases_in_float32_match_the_reference(case, fast):
    latents, ref = run_case(case, fast=fast)
    torch.testing.assert_close(latents, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_close_to_float32(case, dtype):
    full, _ = run_case(case)
    half, _ = run_case(case, dtype)
    assert torch.isfinite(half).all()
    assert (half - full).abs().max() < 0.3 * full.abs().max()


def prompt_args(**extra):
    return dict(prompt="fireworks", max_latent_length=3, num_inference_steps=6, num_diffusion_steps=4,
                output_type="latent", disable_progress_bar=True, **extra)


def test_fast_path_and_cuda_graphs_equal_the_plain_path_on_cuda():
    pipe = pipeline("tiny-t2v")
    runs = {name: pipe(**prompt_args(**kw), generator=torch.Generator().manual_seed(0)).frames.cpu()
            for name, kw in [("plain", dict(fast=False)), ("fast", dict(fast=True)),
                             ("graphs", dict(fast=True, cuda_graphs=True))]}
    torch.testing.assert_close(runs["fast"], runs["plain"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(runs["graphs"], runs["fast"], atol=1e-5, rtol=1e-5)


def test_graphs_are_replayed_by_later_calls_and_recaptured_when_the_key_changes():
    pipe = pipeline("tiny-t2v")

    def call(seed, **kw):
        args = prompt_args(fast=True, cuda_graphs=True)
        args.update(kw)
        return pipe(**args, generator=torch.Generator().manual_seed(seed)).frames.cpu()

    call(0)
    steps = pipe._cuda_graphs.steps
    captured = len(steps.graphs)
    assert captured > 0
    # Another seed (another token order and noise), same key: replayed, no capture, still right.
    again = call(1)
    assert pipe._cuda_graphs.steps is steps and len(steps.graphs) == captured
    eager = pipe(**prompt_args(fast=True), generator=torch.Generator().manual_seed(1)).frames.cpu()
    torch.testing.assert_close(again, eager, atol=1e-5, rtol=1e-5)
    # Other step counts or guidance change the key: new graphs, and still right.
    changed = call(2, num_inference_steps=5, guidance_scale=3.0)
    assert pipe._cuda_graphs.steps is not steps
    eager = pipe(**prompt_args(fast=True, num_inference_steps=5, guidance_scale=3.0),
                 generator=torch.Generator().manual_seed(2)).frames.cpu()
    torch.testing.assert_close(changed, eager, atol=1e-5, rtol=1e-5)
    pipe.to("cuda")
    assert pipe._cuda_graphs.steps is None


def test_every_stage_runs_on_the_pipelines_device():
    from nova_core.progress import NullProgress

    seen = set()

    class Watch(NullProgress):
        def step(self, frame, step, num_steps):
            seen.add(torch.cuda.current_device())

    index = torch.cuda.device_count() - 1  # cuda:1 on a 2-GPU machine; cuda:0 otherwise
    pipe = pipeline("tiny-t2v", device=f"cuda:{index}")
    before = [torch.cuda.memory_allocated(i) for i in range(torch.cuda.device_count())]
    pipe(**prompt_args(fast=True, cuda_graphs=True), progress=Watch(), generator=torch.Generator().manual_seed(0))
    assert seen == {index}
    for i in range(torch.cuda.device_count()):
        if i != index:  # no other GPU got anything
            assert torch.cuda.memory_allocated(i) == before[i]


def test_low_memory_mode_on_cuda_matches_and_keeps_components_on_the_cpu():
    from nova_core import NOVAPipeline

    ref = pipeline("tiny-t2v")
    low = NOVAPipeline.from_pretrained(str(REFERENCE / "tiny-t2v")).enable_low_memory("cuda")
    args = dict(prompt="fireworks", max_latent_length=3, num_inference_steps=4, num_diffusion_steps=3,
                output_type="pt", disable_progress_bar=True)
    a = ref(**args, generator=torch.Generator().manual_seed(0)).frames.cpu()
    b = low(**args, generator=torch.Generator().manual_seed(0)).frames.cpu()
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert low.transformer.device.type == low.vae.device.type == low.text_encoder.device.type == "cpu"
