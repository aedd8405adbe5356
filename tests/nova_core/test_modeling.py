"""nova's model mixin reads and writes diffusers' files, and loading a video checkpoint imports no diffusers."""

import copy
import json
import subprocess
import sys
import pytest
import torch

from nova_core.modeling import FrozenConfig, ModelMixin, randn_tensor
from nova_core.transformer import NOVATransformer3DModel
from nova_core.vae_opensora import AutoencoderKLOpenSora
from tests.conftest import TINY_T2V


def test_our_files_load_in_diffusers_and_theirs_in_ours(tmp_path):
    from diffusers import ModelMixin as TheirMixin
    from diffusers.configuration_utils import ConfigMixin, register_to_config

    class Theirs(TheirMixin, ConfigMixin):  # the same network under diffusers' mixins
        @register_to_config
        def __init__(self, width: int = 4, depth=(1, 2)):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in depth)

    Theirs.__name__ = "Ours"

    from nova_core.modeling import register_to_config as ours_register

    class Ours(ModelMixin):
        @ours_register
        def __init__(self, width: int = 4, depth=(1, 2)):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in depth)

    ours = Ours(width=3, depth=(1, 2, 3))
    ours.save_pretrained(tmp_path / "ours")
    written = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert written["_class_name"] == "Ours" and written["width"] == 3 and written["depth"] == [1, 2, 3]
    theirs = Theirs.from_pretrained(tmp_path / "ours")
    assert dict(theirs.config)["width"] == 3
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    theirs.save_pretrained(tmp_path / "theirs")
    back = Ours.from_pretrained(tmp_path / "theirs")
    assert back.config.width == 3 and list(back.config.depth) == [1, 2, 3]
    for a, b in zip(back.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_round_trip_is_exact_and_in_the_asked_dtype(tmp_path):
    vae = AutoencoderKLOpenSora.from_pretrained(TINY_T2V / "vae")
    assert vae.dtype == torch.float32 and vae.device.type == "cpu"
    vae.save_pretrained(tmp_path)
    again = AutoencoderKLOpenSora.from_pretrained(tmp_path, torch_dtype=torch.float16)
    assert again.dtype == torch.float16 and dict(again.config) == dict(vae.config)
    for (name, a), b in zip(vae.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a.half(), b), name
    ours = json.loads((tmp_path / "config.json").read_text())
    given = json.loads((TINY_T2V / "vae" / "config.json").read_text())
    assert {k: v for k, v in ours.items() if not k.startswith("_")} == \
        {k: v for k, v in {**dict(vae.config), **given}.items() if not k.startswith("_")}


def test_config_is_frozen_copyable_and_renewed_by_register_to_config():
    model = NOVATransformer3DModel.from_config(json.loads((TINY_T2V / "transformer" / "config.json").read_text()))
    with pytest.raises(TypeError):
        model.config["arch"] = None
    with pytest.raises(TypeError):
        model.config.arch = None
    twin = copy.deepcopy(model)  # the trainer's EMA copies the model
    assert isinstance(twin.config, FrozenConfig) and twin.config == model.config
    before = model.config
    model.register_to_config(rotary_pos_embed=False, extra=1)
    assert model.config.extra == 1 and "extra" not in before
    assert NOVATransformer3DModel.from_config({**model.config, "_class_name": "x", "unknown": 2}).config.arch == \
        model.config.arch


def test_loading_refuses_a_file_that_lacks_a_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    (tmp_path / "config.json").write_text((TINY_T2V / "vae" / "config.json").read_text())
    state = load_file(str(TINY_T2V / "vae" / "diffusion_pytorch_model.safetensors"))
    state.pop(next(iter(state)))
    save_file(state, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(RuntimeError, match="Missing key"):
        AutoencoderKLOpenSora.from_pretrained(tmp_path)


def test_noise_is_diffusers_randn_tensor():
    from diffusers.utils.torch_utils import randn_tensor as theirs

    for dtype in (torch.float32, torch.float16):
        a = randn_tensor((2, 3, 4), generator=torch.Generator().manual_seed(1), dtype=dtype)
        b = theirs((2, 3, 4), generator=torch.Generator().manual_seed(1), dtype=dtype)
        assert torch.equal(a, b)


def test_a_video_checkpoint_loads_and_runs_without_diffusers_or_transformers():
    # The point of nova_core.modeling, .scheduling and .tokenizer: ~2 s less start-up per process.
    from tests.nova_cli.conftest import subprocess_env

    code = ("import sys, torch; from nova_core.pipeline import NOVAPipeline; "
            f"pipe = NOVAPipeline.from_pretrained({str(TINY_T2V)!r}); "
            "pipe('a dog', num_inference_steps=2, num_diffusion_steps=2, output_type='np', disable_progress_bar=True); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('diffusers', 'transformers') "
            "or m == 'torch._dynamo'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
