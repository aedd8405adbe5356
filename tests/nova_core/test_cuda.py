"""The end-to-end cases on CUDA (float32 against the reference; float16 close to float32)."""

import pytest
import torch

from tests.nova_core.test_pipeline_parity import SKIP_ARGS, load_case
from tests.conftest import REFERENCE

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("case", ["t2i", "t2v", "i2v"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cases_on_cuda(case, dtype):
    import numpy as np
    from PIL import Image

    from nova_core import NOVAPipeline

    ref, meta = load_case(case)
    pipe = NOVAPipeline.from_pretrained(str(REFERENCE / meta["checkpoint"]), torch_dtype=dtype).to("cuda")
    args = {k: v for k, v in meta["pipeline_call_args"].items() if k not in SKIP_ARGS}
    if case == "i2v":
        args["image"] = np.asarray(Image.open(REFERENCE / "cases" / "i2v_input.png").convert("RGB"))
    out = pipe(**args, generator=torch.Generator().manual_seed(meta["seed"]), output_type="latent",
               disable_progress_bar=True)
    latents = out.frames.float().cpu()
    diff = (latents - ref["latents"]).abs().max().item()
    print(f"{case} cuda {dtype}: max |latents - reference| = {diff:.3g}")
    if dtype == torch.float32:
        torch.testing.assert_close(latents, ref["latents"], atol=1e-3, rtol=1e-3)
    else:
        assert torch.isfinite(latents).all() and (latents - ref["latents"]).abs().mean() < 0.05


def test_fast_path_and_cuda_graphs_equal_the_plain_path_on_cuda():
    from nova_core import NOVAPipeline

    pipe = NOVAPipeline.from_pretrained(str(REFERENCE / "tiny-t2v")).to("cuda")
    args = dict(prompt="fireworks", max_latent_length=3, num_inference_steps=6, num_diffusion_steps=4,
                output_type="latent", disable_progress_bar=True)
    runs = {name: pipe(**args, generator=torch.Generator().manual_seed(0), **kw).frames.cpu()
            for name, kw in [("plain", dict(fast=False)), ("fast", dict(fast=True)),
                             ("graphs", dict(fast=True, cuda_graphs=True))]}
    torch.testing.assert_close(runs["fast"], runs["plain"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(runs["graphs"], runs["fast"], atol=1e-5, rtol=1e-5)


def test_low_memory_mode_on_cuda_matches_and_keeps_components_on_the_cpu():
    from nova_core import NOVAPipeline

    ref = NOVAPipeline.from_pretrained(str(REFERENCE / "tiny-t2v")).to("cuda")
    low = NOVAPipeline.from_pretrained(str(REFERENCE / "tiny-t2v")).enable_low_memory("cuda")
    args = dict(prompt="fireworks", max_latent_length=3, num_inference_steps=4, num_diffusion_steps=3,
                output_type="pt", disable_progress_bar=True)
    a = ref(**args, generator=torch.Generator().manual_seed(0)).frames.cpu()
    b = low(**args, generator=torch.Generator().manual_seed(0)).frames.cpu()
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert low.transformer.device.type == low.vae.device.type == low.text_encoder.device.type == "cpu"
