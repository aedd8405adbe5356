"""The objective: noise on the checkpoint's scheduler, masked spatial encoding, per-token loss."""

import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

from nova_core import NOVATransformer3DModel
from nova_core.loading import load_scheduler
from nova_core.training.loss import NoiseSchedule
from nova_core.training.trainer import Trainer
from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_core.training.helpers import train_config


def test_ddpm_noise_is_diffusers_add_noise_per_token():
    scheduler = load_scheduler(TINY_T2V, "DDPMScheduler")
    schedule = NoiseSchedule(scheduler)
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(2, 5, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    t = schedule.sample_indices(g, (2, 5))
    assert t.dtype == torch.int64 and 0 <= t.min() and t.max() < 1000
    noisy, timestep, target = schedule.noise(x, noise, t)
    reference = DDPMScheduler.from_config(scheduler.config)
    for i in range(2):
        for j in range(5):
            one = reference.add_noise(x[i, j][None], noise[i, j][None], t[i, j][None])[0]
            assert torch.allclose(noisy[i, j], one, atol=1e-6)
    assert torch.equal(timestep, t) and torch.equal(target, noise)  # epsilon prediction


def test_flow_noise_follows_the_shifted_sigma_table():
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    schedule = NoiseSchedule(scheduler)
    g = torch.Generator().manual_seed(0)
    t = schedule.sample_indices(g, (4000,))
    assert 0 <= t.min() and t.max() <= 999 and abs(t.float().mean().item() - 500) < 25  # logit-normal, centred
    x, noise = torch.randn(3, 8), torch.randn(3, 8)
    idx = torch.tensor([0, 500, 999])
    noisy, timestep, target = schedule.noise(x, noise, idx)
    sigma = scheduler.sigmas[idx].unsqueeze(-1)
    assert torch.allclose(noisy, sigma * noise + (1 - sigma) * x)
    assert torch.allclose(timestep, sigma.squeeze(-1) * 1000) and timestep[0] == 1000
    assert torch.equal(target, noise - x)


def test_rows_may_reveal_different_token_counts():
    """known_lengths pads the first half of the spatial encoder; each row equals its own call."""
    model = NOVATransformer3DModel.from_pretrained(str(TINY_T2V / "transformer")).eval()
    g = torch.Generator().manual_seed(0)
    tokens, c = torch.randn(3, 24, 64, generator=g), torch.randn(3, 6, 64, generator=g)
    order = torch.rand(3, 24, generator=g).argsort(1)
    lengths = torch.tensor([5, 0, 2])
    pos = model.image_space_embedding()
    with torch.no_grad():
        padded = model.image_encoder(tokens, c, order[:, :5, None], pos, lengths)
        for row, k in enumerate(lengths.tolist()):
            alone = model.image_encoder(tokens[row : row + 1], c[row : row + 1], order[row : row + 1, :k, None], pos)
            assert torch.allclose(padded[row], alone[0], atol=1e-5)


def test_head_takes_one_timestep_per_token():
    head = NOVATransformer3DModel.from_pretrained(str(TINY_T2V / "transformer")).eval().image_decoder
    x, z = torch.randn(2, 4, 8, 12), torch.randn(2, 24, 64)
    with torch.no_grad():
        per_row = head(x, torch.tensor([10, 700]), z)
        per_token = head(x, torch.tensor([10, 700])[:, None].expand(2, 24), z)
        mixed = head(x, torch.arange(24)[None].expand(2, 24) * 40, z)
    assert torch.allclose(per_row, per_token, atol=1e-6)
    assert not torch.allclose(per_row, mixed)


@pytest.mark.parametrize("checkpoint, cache", [(TINY_T2V, "t2v_cache"), (TINY_T2I, "t2i_cache")])
def test_fixed_batch_and_seeds_give_a_finite_reproducible_loss(checkpoint, cache, request, tmp_path):
    folder = request.getfixturevalue(cache)
    config = train_config(folder, tmp_path / "run", checkpoint)
    a = Trainer(config)
    first = a.evaluate(step=3)
    assert all(torch.isfinite(torch.tensor(v)) for v in first.values())
    assert first == a.evaluate(step=3)
    assert first == Trainer(config).evaluate(step=3)  # a fresh process-alike gives the same numbers
    assert first != a.evaluate(step=4)
    assert ("loss_i2i" in first) == (checkpoint == TINY_T2V)  # video: frame 0 and later frames apart


def test_only_hidden_tokens_carry_loss_and_checkpointing_changes_nothing(t2v_cache, tmp_path):
    trainer = Trainer(train_config(t2v_cache, tmp_path / "run", **{"train.gradient_checkpointing": 0}))
    batch = trainer.maker.make(0, trainer.plan.batch(0)[:2], [0, 1])
    hidden, lengths = trainer.captions(batch, "cpu")
    inputs = dict(batch.to("cpu"), text_hidden=hidden, text_lengths=lengths)

    def loss_and_grads():
        trainer.model.zero_grad()
        first, rest = trainer.model(**inputs)
        (first + rest).backward()
        return first + rest, {n: p.grad.clone() for n, p in trainer.transformer.named_parameters() if p.grad is not None}

    loss, grads = loss_and_grads()
    for encoder in trainer._encoders():
        encoder.gradient_checkpointing = True
    loss_ckpt, grads_ckpt = loss_and_grads()
    assert torch.equal(loss, loss_ckpt) and grads.keys() == grads_ckpt.keys()
    assert all(torch.allclose(grads[n], grads_ckpt[n], atol=1e-6) for n in grads)
    with torch.no_grad():
        nothing_hidden = trainer.model(**dict(inputs, mask=torch.zeros_like(inputs["mask"])))
    assert [v.item() for v in nothing_hidden] == [0.0, 0.0]


def test_teacher_forced_conditions_equal_the_kv_cached_generation_path():
    """The training form of the temporal encoder (one block-causal pass, here with gradient
    checkpointing on) gives each frame the condition the frame-by-frame cached loop gives it."""
    model = NOVATransformer3DModel.from_pretrained(str(TINY_T2V / "transformer")).eval()
    model.video_encoder.gradient_checkpointing = True
    g = torch.Generator().manual_seed(0)
    prefix, latents = torch.randn(2, 18, 64, generator=g), torch.randn(2, 4, 3, 8, 12, generator=g)
    trained = model.temporal_conditions(prefix, latents.requires_grad_())
    assert trained.requires_grad
    with torch.no_grad():
        cache = model.video_encoder.new_cache(2, 18 + 3 * 6, device="cpu", dtype=torch.float32)
        time_embed, space = model.video_pos_embed.time_embedding(3), model.video_pos_embed.space_embedding()
        anchor = None
        for t in range(3):
            tokens = model.frame_tokens(latents[:, :, t - 1] if t else None, 2, time_embed, t, space)
            h = model.video_encoder(tokens, prefix if t == 0 else None, cache)
            anchor = h if t == 0 else anchor
            cached = h if t == 0 else model.video_encoder.mixer(anchor, h)
            assert torch.allclose(trained[:, t], cached, atol=1e-5)


def test_motion_flow_conditions_the_loss(t2v_cache, tmp_path):
    trainer = Trainer(train_config(t2v_cache, tmp_path / "run"))
    batch = trainer.maker.make(0, trainer.plan.batch(0), [0, 1, 2, 3])
    hidden, lengths = trainer.captions(batch, "cpu")
    inputs = dict(batch.to("cpu"), text_hidden=hidden, text_lengths=lengths)
    with torch.no_grad():
        base = trainer.model(**inputs)
        moved = trainer.model(**dict(inputs, motion_flow=inputs["motion_flow"] + 5))
        no_text = trainer.model(**dict(inputs, text_lengths=torch.zeros_like(lengths)))
    assert base[0] != moved[0] and base[0] != no_text[0]


def test_rare_tokens_weigh_more_by_their_distance_from_the_frame_median():
    from nova_core.training.loss import token_weights

    tokens = torch.zeros(2, 6, 4)
    tokens[0, 2] = 3.0  # far from the plain rest: capped at 1 + strength
    tokens[0, 3] = 0.5  # RMS distance 0.5
    tokens[1] = 1.0  # a flat frame: all at its median
    weights = token_weights(tokens, 9.0)
    assert torch.allclose(weights[0], torch.tensor([1, 1, 10, 5.5, 1, 1.0]))
    assert torch.equal(weights[1], torch.ones(6))


def test_rare_token_weight_zero_is_the_papers_loss_and_more_weighs_rare_tokens(t2v_cache, tmp_path):
    losses = []
    for weight in (0.0, 0.0, 9.0):
        trainer = Trainer(train_config(t2v_cache, tmp_path / f"run{weight}{len(losses)}",
                                       **{"train.rare_token_weight": weight}))
        batch = trainer.maker.make(0, trainer.plan.batch(0)[:2], [0, 1])
        hidden, lengths = trainer.captions(batch, "cpu")
        with torch.no_grad():
            first, rest = trainer.model(**dict(batch.to("cpu"), text_hidden=hidden, text_lengths=lengths))
        losses.append(float(first + rest))
    assert losses[0] == losses[1] and losses[2] > losses[0]  # weights are >= 1, > 1 on some tokens
