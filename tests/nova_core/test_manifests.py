"""Full-size compatibility: built from each released config on the meta device, our modules have
exactly the checkpoint's keys and shapes."""

import json

import pytest
import torch

from tests.conftest import MANIFESTS

REPOS = sorted(p.name for p in MANIFESTS.iterdir() if p.name.startswith("nova-"))


def _manifest(repo, part):
    return json.loads((MANIFESTS / repo / f"{part}.json").read_text())


def _shapes(module):
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_all_five_released_checkpoints_are_covered():
    assert REPOS == ["nova-d48w1024-osp480", "nova-d48w1024-sd512", "nova-d48w1024-sdxl1024",
                     "nova-d48w1536-sdxl1024", "nova-d48w768-sdxl1024"]


@pytest.mark.parametrize("repo", REPOS)
def test_transformer_keys_and_shapes(repo):
    from nova_core import NOVATransformer3DModel

    manifest = _manifest(repo, "transformer")
    with torch.device("meta"):
        model = NOVATransformer3DModel.from_config(manifest["config"])
    assert _shapes(model) == manifest["tensors"]
    assert sum(p.numel() for p in model.parameters()) + model.text_embed.weight.numel() == manifest["num_params"]


def test_opensora_vae_keys_and_shapes():
    from nova_core import AutoencoderKLOpenSora

    manifest = _manifest("nova-d48w1024-osp480", "vae")
    with torch.device("meta"):
        vae = AutoencoderKLOpenSora.from_config(manifest["config"])
    assert _shapes(vae) == manifest["tensors"]


@pytest.mark.parametrize("repo", [r for r in REPOS if "osp" not in r])
def test_image_vae_keys_and_shapes(repo):
    from diffusers import AutoencoderKL

    manifest = _manifest(repo, "vae")
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(manifest["config"])
    assert _shapes(vae) == manifest["tensors"]


@pytest.mark.parametrize("repo", REPOS)
def test_text_encoder_config_builds_phi_with_the_checkpoint_keys(repo):
    """We load Phi's decoder (PhiModel) from the checkpoint's text_encoder/ folder: every key of
    ours is the checkpoint's key without its ``model.`` prefix (the unused LM head is skipped)."""
    from transformers import PhiConfig, PhiModel

    manifest = _manifest(repo, "text_encoder")
    config = PhiConfig(**{k: v for k, v in manifest["config"].items() if k != "architectures"})
    with torch.device("meta"):
        phi = PhiModel(config)
    expected = {k[len("model."):]: v for k, v in manifest["tensors"].items() if k.startswith("model.")}
    assert _shapes(phi) == expected
    assert set(manifest["tensors"]) - {f"model.{k}" for k in expected} == {"lm_head.weight", "lm_head.bias"}
