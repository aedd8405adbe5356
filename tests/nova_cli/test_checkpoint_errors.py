"""From the shell, a broken or hostile checkpoint is one line on stderr and exit 1: never a
traceback, never an "internal error", never a library warning (every config of the class is
covered in tests/nova_core/test_config_files.py; here they go through ``nova`` itself)."""

import pytest

from tests.conftest import TINY_T2I
from tests.nova_cli.conftest import FAST
from tests.nova_cli.helpers import run_cli
from tests.nova_core.checkpoints import copy_checkpoint, edit_json, edit_weights

BROKEN = {
    "index-array": ("model_index.json", "[]"),
    "transformer-array": ("transformer/config.json", "[]"),
    "transformer-malformed": ("transformer/config.json", "{"),
    "vae-malformed": ("vae/config.json", "{\"scaling_factor\": "),
    "vae-scaling-type": ("vae/config.json", lambda c: c.update(scaling_factor="big")),
    "scheduler-array": ("scheduler/scheduler_config.json", "[1]"),
    "scheduler-absurd": ("scheduler/scheduler_config.json", lambda c: c.update(num_train_timesteps=10**12)),
    "text-encoder-types": ("text_encoder/config.json", lambda c: c.update(num_hidden_layers="two")),
    "tokenizer-malformed": ("tokenizer/tokenizer.json", "{"),
    "tokenizer-auto-map": ("tokenizer/tokenizer_config.json",
                           lambda c: c.update(auto_map={"AutoTokenizer": ["evil.Evil", None]})),
    "transformer-deeper": ("transformer/config.json", lambda c: c.update(arch=["vit_d3w64", *c["arch"][1:]])),
    "transformer-missing-tensor": ("transformer/diffusion_pytorch_model.safetensors",
                                   lambda t: t.pop(sorted(t)[0])),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_checkpoint_is_one_line_exit_1(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    file, change = BROKEN[name]
    if file.endswith(".safetensors"):
        edit_weights(ckpt / file, change)
    elif callable(change):
        edit_json(ckpt / file, change)
    else:
        (ckpt / file).write_text(change)
    code, out, err = run_cli(capsys, "t2i", "a red car", "--model", ckpt, *FAST, "--seed", "1")
    lines = [line for line in err.splitlines() if not line.startswith("t2i · ")]  # the plan line
    assert code == 1 and len(lines) == 1 and lines[0].startswith("nova: error: "), err
    assert "Traceback" not in err and "internal error" not in err and "Warning" not in err
    assert not list(tmp_path.glob("*.png"))
