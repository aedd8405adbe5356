"""Settings: defaults, TOML file, overrides, and one-line errors for anything off."""

import pytest

from nova_core.training.config import ConfigError, load_config, parse_assignment

REQUIRED = {"model.checkpoint": "ck", "data.cache": "cache", "train.output_dir": "out"}


def test_file_then_overrides_and_the_paper_lr_rule(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nbatch_size = 64\nsteps = 10\n[optim]\nwarmup_steps = 5\n[model]\ncheckpoint = "a"\n'
                    '[data]\ncache = "c"\n')
    config = load_config(path, {"train.steps": 20, "train.output_dir": "o"})
    assert (config.train.batch_size, config.train.steps, config.optim.warmup_steps) == (64, 20, 5)
    assert config.lr == pytest.approx(1e-4 * 64 / 256)
    assert load_config(path, {"train.output_dir": "o", "optim.lr": 3e-4}).lr == 3e-4
    assert config.optim.betas == [0.9, 0.95] and config.optim.weight_decay == 0.02
    assert config.data.caption_dropout == 0.1 and config.train.mask_ratio == [0.7, 1.0]


def test_to_toml_reads_back(tmp_path):
    config = load_config(None, dict(REQUIRED, **{"model.scratch": True, "model.transformer": {"arch": ["a", "b", "c"]}}))
    path = tmp_path / "back.toml"
    path.write_text(config.to_toml())
    assert load_config(path).to_dict() == config.to_dict()


@pytest.mark.parametrize("overrides, message", [
    ({"train.stpes": 3}, "unknown setting 'train.stpes'"),
    ({"trian.steps": 3}, "unknown config section 'trian'"),
    ({"train.steps": "many"}, "train.steps must be int"),
    ({"train.steps": 0}, "train.steps must be >= 1"),
    ({"train.batch_size": 6, "train.grad_accum": 4}, "multiple of train.grad_accum"),
    ({"train.mask_ratio": [0.9, 0.5]}, "train.mask_ratio"),
    ({"train.rare_token_weight": -1.0}, "train.rare_token_weight"),
    ({"train.full_mask_share": 1.5}, "train.full_mask_share"),
    ({"distributed.strategy": "zero3"}, "distributed.strategy must be one of ddp, fsdp"),
    ({"ema.decay": 1.0}, "ema.decay"),
    ({"model.transformer": {"arch": []}}, "needs model.scratch"),
    ({"model.scratch": True, "model.init": "xavier"}, "model.init must be one of default, mar"),
    ({"model.init": "mar"}, "model.init sets starting weights: it needs model.scratch"),
])
def test_bad_settings_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        load_config(None, dict(REQUIRED, **overrides))
    assert "\n" not in str(info.value)


def test_missing_required_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="data.cache is not set"):
        load_config(None, {"model.checkpoint": "x", "train.output_dir": "o"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1")
    with pytest.raises(ConfigError, match="not a readable TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_set_assignments_parse_toml_values():
    assert parse_assignment("train.steps=5") == ("train.steps", 5)
    assert parse_assignment("train.freeze=[]") == ("train.freeze", [])
    assert parse_assignment("model.checkpoint=BAAI/nova-d48w1024-osp480") == ("model.checkpoint", "BAAI/nova-d48w1024-osp480")
    with pytest.raises(ConfigError):
        parse_assignment("steps=5")
