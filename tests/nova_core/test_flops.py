"""The analytic FLOP counts used by ``nova bench`` equal torch's FLOP counter on a real run."""

from collections import defaultdict
from contextlib import contextmanager

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nova_core import NOVAPipeline, flops
from tests.conftest import TINY_T2I, TINY_T2V


class FlopSections:
    """A timer-shaped object that counts FLOPs per section instead of time."""

    def __init__(self):
        self.flops = defaultdict(int)

    @contextmanager
    def __call__(self, name):
        with FlopCounterMode(display=False) as counter:
            yield
        self.flops[name] += counter.get_total_flops()


@pytest.mark.slow
@pytest.mark.parametrize("path, frames, guidance", [(TINY_T2V, 3, 5.0), (TINY_T2V, 2, 1.0), (TINY_T2I, 1, 5.0)])
def test_stage_flops(path, frames, guidance):
    pipe = NOVAPipeline.from_pretrained(str(path))
    sections = FlopSections()
    with sdpa_kernel(SDPBackend.MATH):  # the math kernel is made of counted matmuls
        pipe(["a dog", "a cat"], max_latent_length=frames, num_inference_steps=6, num_diffusion_steps=4,
             guidance_scale=guidance, output_type="latent", timer=sections, fast=True,
             generator=torch.Generator().manual_seed(0), disable_progress_bar=True)
    geo = pipe.transformer.geometry
    cfg = guidance > 1
    expected = flops.generation(geo, num_frames=frames, num_generated=frames, ar_steps=6, diffusion_steps=4,
                                batch=2, cfg=cfg, prefix_len=16 + (2 if geo.has_motion else 0))
    expected["text"] = flops.text_encoder(pipe.text_encoder.config, 16, 2 * (2 if cfg else 1))
    assert dict(sections.flops) == expected
