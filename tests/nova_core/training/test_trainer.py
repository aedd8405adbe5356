"""The loop: it learns, its checkpoints load and generate, and a resumed run continues exactly."""

import json
import signal

import pytest
import torch
from safetensors.torch import load_file

from nova_core import NOVAPipeline
from nova_core.training import checkpoint
from nova_core.training.cache import CacheError
from nova_core.training.config import ConfigError
from nova_core.training.display import NullDisplay
from nova_core.training.trainer import Trainer, TrainingInterrupted
from tests.conftest import TINY_T2I
from tests.nova_core.training.helpers import make_cache, train_config


def losses(output):
    return [json.loads(line)["loss"] for line in (output / "log.jsonl").read_text().splitlines()]


def weights(folder, name="transformer/diffusion_pytorch_model.safetensors"):
    return load_file(str(folder / name))


@pytest.fixture(scope="module")
def overfit(t2v_cache, tmp_path_factory):
    """A tiny video model trained 250 steps on four synthetic clips, and its loss on fixed batches
    (same items, masks, noise, timesteps) before and after, and on four clips it never saw."""
    output = tmp_path_factory.mktemp("overfit")
    trainer = Trainer(train_config(t2v_cache, output, **{"train.steps": 250, "optim.lr": 2e-3, "log.every": 25,
                                                         "data.caption_dropout": 0.0, "ema.decay": 0.5}))
    before = [trainer.evaluate(step)["loss"] for step in range(3)]
    folder = trainer.run()
    after = [trainer.evaluate(step)["loss"] for step in range(3)]
    unseen = Trainer(train_config(make_cache(output / "unseen", seed=1), output / "unseen-run"))
    unseen.transformer.load_state_dict(trainer.transformer.state_dict())
    return trainer, folder, before, after, [unseen.evaluate(step)["loss"] for step in range(3)]


@pytest.mark.slow
def test_overfitting_four_clips_halves_the_loss(overfit):
    trainer, _, before, after, unseen = overfit
    assert max(after) < 0.5 * min(before), (before, after)
    assert max(after) < 0.5 * min(unseen), (after, unseen)  # memorised these clips, not just learned noise
    logged = losses(trainer.output)
    assert len(logged) == 10 and logged[-1] < 0.5 * logged[0]


def test_checkpoint_is_the_official_layout_and_generates(overfit):
    trainer, folder = overfit[:2]
    assert folder.name == "checkpoint-000250"
    ema = {n: t for n, t in trainer.ema.shadow.items()}
    saved = weights(folder)
    assert all(torch.equal(saved[n], ema[n]) for n in ema)  # transformer/ publishes the EMA
    raw = weights(folder, "training_state/model.safetensors")
    assert all(torch.equal(raw[n], p.detach()) for n, p in trainer.transformer.named_parameters())
    pipe = NOVAPipeline.from_pretrained(str(folder))
    assert all(torch.equal(pipe.transformer.state_dict()[n], saved[n]) for n in saved)
    video = pipe("fireworks over the city", max_latent_length=2, num_inference_steps=3, num_diffusion_steps=2,
                 motion_flow=3, output_type="np", generator=torch.Generator().manual_seed(0)).frames
    assert video.shape == (1, 5, 64, 96, 3) and video.dtype == "uint8" and video.std() > 0


def run(config):
    return Trainer(config, NullDisplay()).run()


@pytest.mark.slow
def test_stop_and_resume_equals_one_uninterrupted_run(t2v_cache, tmp_path):
    settings = {"train.steps": 6, "train.grad_accum": 2, "optim.warmup_steps": 3, "optim.schedule": "cosine",
                "ema.decay": 0.9, "log.save_every": 2, "log.keep_last": 2}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run(train_config(t2v_cache, whole, **settings))
    run(train_config(t2v_cache, parts, **dict(settings, **{"train.steps": 3})))  # "stopped" after step 3
    assert [p.name for p in checkpoint.checkpoints(parts)] == ["checkpoint-000002", "checkpoint-000003"]
    resumed = Trainer(train_config(t2v_cache, parts, **settings), NullDisplay())
    assert resumed.step == 3 and resumed.ema.updates == 3
    resumed.run()
    assert losses(parts) == losses(whole) and len(losses(whole)) == 6
    for name in ("transformer/diffusion_pytorch_model.safetensors", "training_state/model.safetensors"):
        a, b = weights(whole / "checkpoint-000006", name), weights(parts / "checkpoint-000006", name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in checkpoint.checkpoints(parts)] == ["checkpoint-000004", "checkpoint-000006"]
    state = json.loads((parts / "checkpoint-000006/training_state/state.json").read_text())
    assert state["step"] == 6 and state["batch_size"] == 4


@pytest.mark.slow
def test_ctrl_c_saves_the_step_and_the_run_continues(t2v_cache, tmp_path):
    class InterruptAtStep2(NullDisplay):
        def advance(self, step):
            if step == 2:
                signal.raise_signal(signal.SIGINT)

    config = train_config(t2v_cache, tmp_path, **{"train.steps": 4})
    with pytest.raises(TrainingInterrupted, match="interrupted at step 2"):
        Trainer(config, InterruptAtStep2()).run()
    assert checkpoint.latest(tmp_path).name == "checkpoint-000002"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    Trainer(config).run()
    assert len(losses(tmp_path)) == 4


def test_resuming_with_other_data_order_settings_is_refused(t2v_cache, tmp_path):
    run(train_config(t2v_cache, tmp_path, **{"train.steps": 1}))
    with pytest.raises(ConfigError, match="batch_size = 4, not 2"):
        Trainer(train_config(t2v_cache, tmp_path, **{"train.batch_size": 2}))


def test_image_checkpoint_trains_on_cached_text_and_refuses_video_latents(t2i_cache, t2v_cache, tmp_path):
    trainer = Trainer(train_config(t2i_cache, tmp_path / "t2i", TINY_T2I, **{"model.scratch": True,
                                                                            "model.transformer": {"arch": ["vit_d1w64", "vit_d2w64", "mlp_d1w32"]}}))
    assert trainer.captions.text_encoder is None  # cached Phi rows: no text encoder loaded
    assert trainer.transformer.geometry.head.depth == 1
    assert trainer.transformer.image_decoder.head.weight.abs().max() > 0  # torch's init by default
    mar = Trainer(train_config(t2i_cache, tmp_path / "mar", TINY_T2I, **{"model.scratch": True, "model.init": "mar"}))
    assert mar.transformer.image_decoder.head.weight.abs().max() == 0  # adaLN-Zero head
    assert set(trainer.train_step()) == {"loss", "loss_t2i", "lr"}
    with pytest.raises(ConfigError, match="unknown transformer setting.s. depth"):
        Trainer(train_config(t2i_cache, tmp_path / "x", TINY_T2I, **{"model.scratch": True,
                                                                    "model.transformer": {"depth": 3}}))
    with pytest.raises(CacheError, match="vae 'AutoencoderKLOpenSora'; this checkpoint has 'AutoencoderKL'"):
        Trainer(train_config(t2v_cache, tmp_path / "bad", TINY_T2I))


def test_warmup_and_frozen_modules(t2v_cache, tmp_path):
    trainer = Trainer(train_config(t2v_cache, tmp_path, **{"optim.lr": 0.0, "train.batch_size": 8,
                                                          "optim.warmup_steps": 4}))
    assert [trainer._lr_factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * 8 / 256 * 0.25)
    frozen = {n for n, p in trainer.transformer.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("text_embed.norm", "motion_embed")) for n in frozen)
    before = {n: p.detach().clone() for n, p in trainer.transformer.named_parameters()}
    trainer.train_step()
    after = dict(trainer.transformer.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert not torch.equal(before["image_decoder.head.weight"], after["image_decoder.head.weight"])
