"""Resume state round-trips through safetensors exactly, and nothing else is written or read."""

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nova_core.errors import CheckpointError
from nova_core.training import checkpoint, state_file


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


def test_an_optimizer_schedule_and_rng_round_trip_exactly(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": ["MT19937", torch.arange(5), 3, 0, 0.0]}
    for name, value in (("opt", optimizer.state_dict()), ("lr", schedule.state_dict()), ("rng", rng),
                        ("odd", {0: (1.5, None, True, "x"), "inf": [float("inf"), float("-inf"), float("nan")],
                                 "scalar": torch.tensor(2.0), "empty": torch.zeros(0, 3, dtype=torch.int8)})):
        state_file.save(value, tmp_path / f"{name}.safetensors")
        back = state_file.load(tmp_path / f"{name}.safetensors")
        assert same(value, back), name
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(state_file.load(tmp_path / "opt.safetensors"))
    assert fresh.param_groups[0]["betas"] == (0.9, 0.95)
    random.setstate(state_file.load(tmp_path / "rng.safetensors")["python"])  # the form random wants


@pytest.mark.parametrize("value", [np.zeros(2), {1.5: 1}, {True: 1}, object(), {"a": {2, 3}}])
def test_what_json_and_tensors_cannot_hold_is_refused_on_save(tmp_path, value):
    with pytest.raises(TypeError):
        state_file.save(value, tmp_path / "x.safetensors")


def test_foreign_or_malformed_files_are_one_line_errors(tmp_path):
    pickle = tmp_path / "pickle.safetensors"
    torch.save({"a": 1}, pickle)
    plain = tmp_path / "plain.safetensors"
    save_file({"t0": torch.zeros(1)}, str(plain))
    cases = {pickle: "not a safetensors file", plain: "not a nova state file"}
    for structure, message in (({"t": "t9"}, "missing tensor"), ({"x": 1}, "malformed"),
                               ({"d": [[[1], {"v": 1}]]}, "key must be str or int"),
                               ({"v": {"nested": 1}}, "malformed"), ("not json", "malformed")):
        path = tmp_path / f"bad{len(cases)}.safetensors"
        text = structure if isinstance(structure, str) else json.dumps(structure)
        save_file({"t0": torch.zeros(1)}, str(path), metadata={state_file.STRUCTURE: text})
        cases[path] = message
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as error:
            state_file.load(path)
        assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_checkpoint_with_pickled_resume_state_is_not_resumed(tmp_path):
    folder = tmp_path / "checkpoint-000002"
    state = folder / checkpoint.STATE
    state.mkdir(parents=True)
    (state / "state.json").write_text("{}")
    (folder / "transformer").mkdir()
    (folder / "transformer" / "config.json").write_text("{}")
    save_file({"w": torch.zeros(1)}, str(folder / "transformer" / checkpoint.WEIGHTS))
    torch.save({"state": {}}, state / "optimizer.pt")
    with pytest.raises(CheckpointError, match=r"optimizer.safetensors is missing \(its .pt pickle"):
        checkpoint.load(folder)
