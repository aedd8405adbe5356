"""Weights must match the config exactly, in every component: a missing, unexpected or reshaped
tensor (or a config one block deeper than its weights) is a one-line CheckpointError naming the
component and the first keys, never random values or a page of state-dict report."""

import pytest
import torch

from nova_core import NOVAPipeline
from nova_core.errors import CheckpointError
from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_core.checkpoints import copy_checkpoint, edit_json, edit_weights

# component folder, weights file, a tensor in it, the component's name in messages
COMPONENTS = {
    "transformer": ("transformer", "diffusion_pytorch_model.safetensors", "image_decoder.blocks.0.norm2.weight",
                    "transformer"),
    "vae": ("vae", "diffusion_pytorch_model.safetensors", "decoder.conv_in.weight", "vae"),
    "text_encoder": ("text_encoder", "model.safetensors", "model.layers.1.mlp.fc1.weight", "text encoder"),
}
DEEPER = {  # config one block deeper than the weights
    "transformer": ("config.json", lambda c: c.update(arch=["vit_d3w64", *c["arch"][1:]]), "video_encoder.blocks.2."),
    "vae": ("config.json", lambda c: c.update(layers_per_block=c["layers_per_block"] + 1), "resnets.1."),
    "text_encoder": ("config.json", lambda c: c.update(num_hidden_layers=c["num_hidden_layers"] + 1),
                     "model.layers.2."),
}


def _refusal(ckpt) -> str:
    with pytest.raises(CheckpointError) as info:
        NOVAPipeline.from_pretrained(str(ckpt))
    message = str(info.value)
    assert "\n" not in message and len(message) < 600
    return message


def _edited(tmp_path, src, key, change):
    ckpt = copy_checkpoint(src, tmp_path / "ckpt")
    folder, file, _, _ = COMPONENTS[key]
    edit_weights(ckpt / folder / file, change)
    return ckpt


@pytest.mark.parametrize("src", [TINY_T2V, TINY_T2I], ids=["t2v", "t2i"])
@pytest.mark.parametrize("key", sorted(COMPONENTS))
def test_missing_tensor(tmp_path, src, key):
    tensor, name = COMPONENTS[key][2], COMPONENTS[key][3]
    message = _refusal(_edited(tmp_path, src, key, lambda t: t.pop(tensor)))
    assert f"the {name} weights do not match its config: 1 missing ({tensor})" in message


@pytest.mark.parametrize("key", sorted(COMPONENTS))
def test_unexpected_tensor(tmp_path, key):
    name = COMPONENTS[key][3]
    message = _refusal(_edited(tmp_path, TINY_T2V, key, lambda t: t.update({"extra.weight": torch.zeros(3)})))
    assert f"the {name} weights do not match its config: 1 unexpected (extra.weight)" in message


@pytest.mark.parametrize("key", sorted(COMPONENTS))
def test_shape_mismatch(tmp_path, key):
    tensor, name = COMPONENTS[key][2], COMPONENTS[key][3]

    def reshape(tensors):
        old = tensors[tensor]
        tensors[tensor] = torch.zeros(old.shape[0] + 1, *old.shape[1:])

    message = _refusal(_edited(tmp_path, TINY_T2V, key, reshape))
    assert f"{name} weights do not match its config: 1 of another shape (file vs config: {tensor} [" in message


@pytest.mark.parametrize("key", sorted(DEEPER))
def test_config_one_block_deeper_than_its_weights(tmp_path, key):
    """Before: the transformer loaded with a randomly initialised block and made garbage (exit 0)."""
    ckpt = copy_checkpoint(TINY_T2V, tmp_path / "ckpt")
    file, change, prefix = DEEPER[key]
    edit_json(ckpt / COMPONENTS[key][0] / file, change)
    message = _refusal(ckpt)
    assert f"the {COMPONENTS[key][3]} weights do not match its config:" in message and " missing (" in message
    assert prefix in message and message.count(",") < 20  # the first few keys, not all of them


def test_text_encoder_without_the_unused_lm_head_loads(tmp_path):
    """The official layout carries Phi's LM head; nova never uses it, so it may be absent."""
    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    edit_weights(ckpt / "text_encoder" / "model.safetensors",
                 lambda t: [t.pop(k) for k in ("lm_head.weight", "lm_head.bias")])
    pipe = NOVAPipeline.from_pretrained(str(ckpt))
    assert pipe.text_encoder.config.num_hidden_layers == 2


def test_sharded_safetensors_are_checked_across_shards(tmp_path):
    """An index with two shards loads; the same index with a tensor missing from both is refused."""
    import json

    from safetensors.torch import load_file, save_file

    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    folder = ckpt / "transformer"
    tensors = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"a.safetensors": names[: len(names) // 2], "b.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    pipe = NOVAPipeline.from_pretrained(str(ckpt))
    assert torch.equal(pipe.transformer.state_dict()[names[0]], tensors[names[0]])

    edit_weights(folder / "b.safetensors", lambda t: t.pop(names[-1]))
    assert f"1 missing ({names[-1]})" in _refusal(ckpt)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_weights_file_that_is_not_safetensors(tmp_path, damage):
    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    path = ckpt / "vae" / "diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(b"\x00" * 64 if damage == "garbage" else data[: len(data) // 2])
    assert "vae/diffusion_pytorch_model.safetensors: not a readable safetensors file" in _refusal(ckpt)
