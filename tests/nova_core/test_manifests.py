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


@pytest.mark.parametrize("repo", REPOS)
def test_the_loading_checks_accept_every_released_checkpoint(repo, tmp_path):
    """The released configs pass every config check, and nova's strict weight check (the one run
    before loading) accepts their exact tensor lists: strictness never refuses a real checkpoint."""
    from nova_core import loading
    from nova_core.text import read_text_encoder_config, text_encoder_shapes
    from nova_core.transformer import NOVATransformer3DModel
    from nova_core.weights import check_match, meta_shapes

    video = "osp" in repo
    for part in ("transformer", "vae", "text_encoder"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "config.json").write_text(json.dumps(_manifest(repo, part)["config"]))
    loading.checkpoint_geometry(tmp_path)
    config = loading.read_model_config(tmp_path, "transformer", NOVATransformer3DModel)
    expected = meta_shapes(lambda: NOVATransformer3DModel.from_config(config), tmp_path, "transformer")
    check_match("transformer", tmp_path, expected, _manifest(repo, "transformer")["tensors"])

    vae_name = "AutoencoderKLOpenSora" if video else "AutoencoderKL"
    vae_config = loading.read_vae_config(tmp_path, vae_name)
    vae_cls = loading.vae_class(tmp_path, vae_name)
    expected = meta_shapes(lambda: vae_cls.from_config(vae_config), tmp_path, "vae")
    check_match("vae", tmp_path, expected, _manifest(repo, "vae")["tensors"])

    phi = read_text_encoder_config(tmp_path / "text_encoder")
    expected, optional = text_encoder_shapes(phi, tmp_path)
    check_match("text encoder", tmp_path, expected, _manifest(repo, "text_encoder")["tensors"], optional)
