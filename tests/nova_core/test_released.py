"""The configs nova carries for the released checkpoints agree with the reference manifests."""

import json

import pytest

from nova_core import released
from tests.conftest import MANIFESTS, REFERENCE


@pytest.mark.parametrize("repo", sorted(released.CHECKPOINTS))
def test_transformer_and_vae_configs_match_the_manifests(repo):
    folder = MANIFESTS / repo.split("/")[1]
    transformer = json.loads((folder / "transformer.json").read_text())["config"]
    ours = released.CHECKPOINTS[repo]
    assert {k: v for k, v in transformer.items() if k != "rotary_pos_embed"} == ours["transformer"]
    vae = json.loads((folder / "vae.json").read_text())["config"]
    for key, value in ours["vae_config"].items():
        assert vae[key] == value, key
    phi = json.loads((folder / "text_encoder.json").read_text())["config"]
    for key, value in ours["text_encoder"].items():
        assert phi[key] == value, key


@pytest.mark.parametrize("name", sorted(released.TINY))
def test_tiny_configs_match_the_tiny_checkpoints(name):
    transformer = json.loads((REFERENCE / name / "transformer" / "config.json").read_text())
    ours = released.TINY[name]["transformer"]
    assert {k: transformer[k] for k in ours} == ours
    vae = json.loads((REFERENCE / name / "vae" / "config.json").read_text())
    assert {k: vae[k] for k in released.TINY[name]["vae_config"]} == released.TINY[name]["vae_config"]


def test_aliases_and_unknown_names():
    assert released.config("video")[0] == "BAAI/nova-d48w1024-osp480"
    with pytest.raises(KeyError, match="unknown config"):
        released.config("nova-xl")


@pytest.mark.parametrize("repo", sorted(released.CHECKPOINTS))
def test_parameter_counts_are_the_manifests_exact_ones(repo):
    import math

    manifest = json.loads((MANIFESTS / repo.split("/")[1] / "transformer.json").read_text())
    summed = sum(math.prod(shape) for shape in manifest["tensors"].values())
    assert released.CHECKPOINTS[repo]["params"] == summed == manifest["num_params"]


def test_sizes_read_as_the_model_zoo_quotes_them():
    zoo = {"BAAI/nova-d48w768-sdxl1024": "0.3B", "BAAI/nova-d48w1024-sdxl1024": "0.6B",
           "BAAI/nova-d48w1536-sdxl1024": "1.4B", "BAAI/nova-d48w1024-osp480": "0.6B",
           "BAAI/nova-d48w1024-sd512": "0.6B"}
    assert {repo: released.zoo_size(info["params"]) for repo, info in released.CHECKPOINTS.items()} == zoo


def test_the_demo_config_is_what_the_recipe_builds(tmp_path):
    from nova_core.demo import components

    name, desc = released.config("demo")
    assert name == "demo" and desc["transformer"] == components.transformer_config(components.ComponentSettings())
    vae = components.vae(components.ComponentSettings(), 0)
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in vae.config.items() if k in desc["vae_config"]} \
        == desc["vae_config"]
    from transformers import PhiConfig, PhiModel

    theirs = PhiModel(PhiConfig(**desc["text_encoder"])).state_dict()
    ours = components.text_encoder(components.ComponentSettings(), 0).state_dict()
    assert {k: v.shape for k, v in theirs.items()} == {k: v.shape for k, v in ours.items()}
