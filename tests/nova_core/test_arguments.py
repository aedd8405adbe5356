"""Every argument of NOVAPipeline.__call__ is checked before any work, with a one-line InputError
(before: ``generator="seed"`` was an AttributeError from inside the sampling loop)."""

import numpy as np
import pytest
import torch

from nova_core.errors import InputError

FAST = dict(num_inference_steps=2, num_diffusion_steps=2, output_type="latent", disable_progress_bar=True)
UINT8_IMAGE = np.zeros((64, 96, 3), np.uint8)


BAD = [
    # prompts
    (dict(prompt=5), "prompt must be a string or a non-empty list"),
    (dict(prompt=[]), "prompt must be"),
    (dict(prompt=["a", 3]), "prompt must be"),
    (dict(prompt=b"bytes"), "prompt must be"),
    (dict(negative_prompt=7), "negative_prompt: expected a string or 1 strings"),
    (dict(negative_prompt=["a", "b"]), "one per prompt"),
    (dict(prompt_embeds=torch.zeros(1, 4, 80)), "either prompt or prompt_embeds"),
    (dict(prompt=None, prompt_embeds=torch.zeros(1, 4, 81)), r"prompt_embeds must be floating-point \(length, 80\)"),
    (dict(prompt=None, prompt_embeds=torch.zeros(4, 80)), r"\(N, length, 80\) tensor"),
    (dict(prompt=None, prompt_embeds=torch.zeros(1, 4, 80, dtype=torch.int64)), "floating-point"),
    (dict(prompt=None, prompt_embeds="embeds"), "prompt_embeds must be"),
    (dict(prompt=None, prompt_embeds=torch.zeros(2, 4, 80), negative_prompt_embeds=torch.zeros(1, 4, 80)),
     "expected 2 rows"),
    (dict(negative_prompt_embeds=torch.zeros(1, 4, 80)), "needs prompt_embeds"),
    # the generator
    (dict(generator="seed"), "generator must be a torch.Generator"),
    (dict(generator=0), "generator must be a torch.Generator"),
    (dict(generator=[torch.Generator()]), "not a list"),
    # step counts and lengths
    (dict(num_inference_steps=0), "num_inference_steps must be an integer >= 1"),
    (dict(num_inference_steps=2.5), "num_inference_steps must be an integer"),
    (dict(num_inference_steps="64"), "num_inference_steps must be an integer"),
    (dict(num_diffusion_steps=True), "num_diffusion_steps must be an integer"),
    (dict(num_diffusion_steps=10**6), "num_diffusion_steps must be <= 1000"),
    (dict(max_latent_length=-1), "max_latent_length must be an integer >= 1"),
    (dict(max_latent_length=None), "max_latent_length must be an integer"),
    (dict(num_images_per_prompt=0), "num_images_per_prompt must be an integer >= 1"),
    (dict(num_images_per_prompt="2"), "num_images_per_prompt must be an integer"),
    # guidance and flow
    (dict(guidance_scale="5"), "guidance_scale must be a finite number"),
    (dict(guidance_scale=float("inf")), "guidance_scale must be a finite number"),
    (dict(guidance_scale=-1), "guidance_scale must be >= 0"),
    (dict(guidance_trunc=None), "guidance_trunc must be a finite number"),
    (dict(guidance_trunc=-0.5), "guidance_trunc must be >= 0"),
    (dict(guidance_renorm=float("nan")), "guidance_renorm must be a finite number"),
    (dict(motion_flow="fast"), "motion_flow must be a finite number"),
    (dict(motion_flow=-3), "motion_flow must be >= 0"),
    (dict(motion_flow=None), "motion_flow must be a finite number"),
    (dict(image_guidance_scale=2), "not supported"),
    (dict(flow_shift=2.0), "flow-matching"),
    # image and latents
    (dict(image="picture.png"), "uint8 H x W x 3"),
    (dict(image=np.zeros((64, 96, 3), np.float32)), "uint8"),
    (dict(image=np.zeros((32, 48, 3), np.uint8)), "64 x 96 x 3"),
    (dict(image=UINT8_IMAGE, latents=torch.zeros(1, 4, 8, 12)), "either image or latents"),
    (dict(latents="noise"), "latents must be a"),
    (dict(latents=torch.zeros(1, 4, 1, 8, 12, dtype=torch.int64)), "floating-point tensor, got torch.int64"),
    (dict(latents=torch.zeros(1, 4, 1, 8, 8)), r"expected \(1 or 1, 4, K, 8, 12\)"),
    (dict(latents=torch.zeros(2, 4, 1, 8, 12)), r"expected \(1 or 1,"),
    (dict(latents=torch.zeros(1, 4, 4, 8, 12)), "pre-fill 4 frames but max_latent_length is 3"),
    (dict(latents=torch.full((1, 4, 1, 8, 12), float("nan"))), "NaN or infinite"),
    (dict(latents=[torch.zeros(1, 4, 8, 12), torch.zeros(1, 4, 8, 8)]), "differ in shape"),
    (dict(latents=[torch.zeros(4, 8, 12)]), "list must hold"),
    # outputs and options
    (dict(output_type="gif"), "output_type must be one of pil, np, pt, latent"),
    (dict(output_type=None), "output_type must be one of"),
    (dict(disable_progress_bar="yes"), "disable_progress_bar must be True or False"),
    (dict(fast="yes"), "fast must be None, True or False"),
    (dict(cuda_graphs=1), "cuda_graphs must be True or False"),
    (dict(progress=object()), "progress must have the methods start, step, frame, close"),
    (dict(timer="timer"), "timer must be callable"),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[f"{next(iter(k))}-{i}" for i, (k, _) in enumerate(BAD)])
def test_bad_argument_is_one_line_before_any_work(t2v, monkeypatch, kwargs, message):
    def no_work(*args, **kw):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(t2v, "encode_prompt", no_work)
    monkeypatch.setattr(t2v, "encode_image", no_work)
    args = {"prompt": "a dog", "max_latent_length": 3, "generator": torch.Generator().manual_seed(0), **FAST,
            **kwargs}
    with pytest.raises(InputError, match=message) as info:
        t2v(**args)
    assert "\n" not in str(info.value)


def test_image_checkpoint_arguments(t2i):
    with pytest.raises(InputError, match="image checkpoint"):
        t2i("a car", max_latent_length=2, **FAST)
    for bad in (True, 0, -1.0, "2"):
        with pytest.raises(InputError, match="flow_shift must be"):
            t2i("a car", flow_shift=bad, **FAST)


def test_good_arguments_of_every_kind_still_run(t2v):
    out = t2v(["a dog", "a cat"], negative_prompt=["blurry", "dark"], num_images_per_prompt=1,
              max_latent_length=2, generator=torch.Generator().manual_seed(0), motion_flow=np.float32(3),
              guidance_scale=np.int64(4), num_inference_steps=np.int64(2), num_diffusion_steps=2,
              latents=[torch.zeros(1, 4, 8, 12)], output_type="latent", disable_progress_bar=True, fast=False)
    assert out.frames.shape == (2, 4, 2, 8, 12)
    embeds = t2v(prompt=None, prompt_embeds=[torch.randn(3, 80)], max_latent_length=1, **FAST)
    assert embeds.frames.shape == (1, 4, 1, 8, 12)
