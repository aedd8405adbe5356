"""VAE training: the loss falls on a few demo clips within seconds, and a run is seeded."""

import numpy as np
import pytest
import torch

from nova_core.demo import components
from nova_core.demo.scenes import random_scene
from nova_core.training.vae import VAETrainSettings, latent_scale, to_pixels, train_vae, vae_loss, window


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions gain nothing from a second thread (and lose a lot on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_vae(seed=0):
    settings = components.ComponentSettings(vae_channels=[8, 8, 16, 16], vae_groups=8)
    return components.vae(settings, seed)


def items():
    """Two 5-frame clips and an image, drawn small (32x48) so a step takes a fraction of a second."""
    rng = np.random.default_rng(0)
    clips = [random_scene(rng, num_frames=5, frame_size=(32, 48)).render() for _ in range(2)]
    return clips + [random_scene(rng, num_frames=1, frame_size=(32, 48)).render()]


def test_loss_decreases_on_a_few_clips():
    vae, data = small_vae(), items()
    history = train_vae(vae, data, VAETrainSettings(steps=30, batch_size=2, clip_frames=5, lr=3e-3, warmup_steps=5))
    first = np.mean([m["reconstruction"] for m in history[:3]])
    last = np.mean([m["reconstruction"] for m in history[-3:]])
    assert last < 0.6 * first, (first, last)
    assert all(m["kl"] >= 0 for m in history)


def test_same_settings_same_weights():
    data = items()[:1]
    a, b = small_vae(), small_vae()
    settings = VAETrainSettings(steps=2, batch_size=1, clip_frames=5, crop=[16, 24])
    train_vae(a, data, settings)
    train_vae(b, data, settings)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    c = small_vae()
    train_vae(c, data, VAETrainSettings(steps=2, batch_size=1, clip_frames=5, crop=[16, 24], seed=1))
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_kl_is_zero_for_the_prior_and_windows_are_whole():
    gen = torch.Generator().manual_seed(0)
    clip = np.zeros((33, 8, 8, 3), np.uint8)
    assert len(window(clip, 9, gen)) == 9 and len(window(clip[:1], 9, gen)) == 1
    assert window(clip, 5, gen, [4, 6]).shape == (5, 4, 6, 3)
    with pytest.raises(ValueError, match="larger"):
        window(clip, 5, gen, [16, 6])
    vae = small_vae()
    _, parts = vae_loss(vae, torch.zeros(1, 3, 5, 32, 48), gen, 1.0)
    assert parts["kl"] >= 0
    assert latent_scale(vae, items()[:1]) > 0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="clip_frames"):
        train_vae(small_vae(), items(), VAETrainSettings(steps=1, clip_frames=8))
    with pytest.raises(ValueError, match="at least one"):
        train_vae(small_vae(), [], VAETrainSettings(steps=1))


def test_rare_pixels_weigh_more_and_zero_weight_is_the_plain_loss():
    from nova_core.training.vae import pixel_weights

    scene = random_scene(np.random.default_rng(3), num_frames=5)
    x = to_pixels(scene.render())[None]
    weights = pixel_weights(x, 10.0)[0, 0]
    background = (x[0] == x[0, :, :1, :1, :1]).all(dim=0)  # the corner's colour is the background's
    assert torch.allclose(weights[background], torch.ones(())) and weights.max() > 4 and weights.max() <= 11
    vae = components.vae(components.ComponentSettings(), 0)
    plain, parts = vae_loss(vae, x, torch.Generator().manual_seed(0), 1e-4)
    same, _ = vae_loss(vae, x, torch.Generator().manual_seed(0), 1e-4, rare_pixel_weight=0.0)
    weighted, wparts = vae_loss(vae, x, torch.Generator().manual_seed(0), 1e-4, rare_pixel_weight=10.0)
    assert same == plain and wparts["reconstruction"] != parts["reconstruction"]


def test_crops_on_content_hold_the_object():
    from nova_core.demo.scenes import Scene

    clip = Scene("red", "square", "right", "black", size=12.0, start=(20.0, 60.0), speed=1.0, num_frames=5).render()
    far = np.abs(clip.astype(int) - 15).max(axis=-1) > 60  # the object's pixels over the run
    missed = held = 0
    for seed in range(40):
        random_crop = window(clip, 5, torch.Generator().manual_seed(seed), [24, 32])
        crop = window(clip, 5, torch.Generator().manual_seed(seed), [24, 32], on_content=True)
        assert crop.shape == (5, 24, 32, 3)
        count = lambda frames: (np.abs(frames.astype(int) - 15).max(axis=-1) > 60).sum()
        held += count(crop) == far.sum()
        missed += count(random_crop) < far.sum()
    assert held == 40 and missed > 20  # plain random crops cut the object most of the time
    # an object larger than the crop: the crop centres it
    big = window(clip, 5, torch.Generator().manual_seed(0), [8, 8], on_content=True)
    assert (np.abs(big.astype(int) - 15).max(axis=-1) > 60).all()


def test_cosine_schedule_warms_up_then_decays_to_one_percent():
    from nova_core.training.vae import lr_factor

    s = VAETrainSettings(steps=101, warmup_steps=10, schedule="cosine")
    factors = [lr_factor(step, s) for step in range(s.steps)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] == pytest.approx(0.01)
    constant = VAETrainSettings(steps=101, warmup_steps=10)
    assert lr_factor(50, constant) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        train_vae(small_vae(), items(), VAETrainSettings(steps=1, clip_frames=5, schedule="step"))


def test_windows_with_a_frame_stride():
    clip = np.arange(33)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3).astype(np.uint8)
    strides = set()
    for seed in range(30):
        run = window(clip, 9, torch.Generator().manual_seed(seed), max_stride=3)[:, 0, 0, 0].astype(int)
        steps = set(np.diff(run))
        assert len(run) == 9 and len(steps) == 1
        strides |= steps
    assert strides == {1, 2, 3}
    # a clip too short for a stride keeps stride 1; a still stays whole
    assert list(window(clip[:9], 9, torch.Generator(), max_stride=4)[:, 0, 0, 0]) == list(range(9))
    assert len(window(clip[:1], 9, torch.Generator(), max_stride=4)) == 1


def test_a_batch_is_the_mean_of_its_samples():
    """Batched (how a step runs, for speed) or one by one, the loss and its gradients are the same."""
    vae = small_vae()
    x = torch.stack([to_pixels(c) for c in items()[:2]])

    def gens():
        return [torch.Generator().manual_seed(s) for s in (3, 4)]

    def grads():
        out = [p.grad.clone() for p in vae.parameters()]
        vae.zero_grad()
        return out

    batched, parts = vae_loss(vae, x, gens(), 1e-2, rare_pixel_weight=10.0)
    batched.backward()
    together = grads()
    singles = [vae_loss(vae, x[i : i + 1], gen, 1e-2, rare_pixel_weight=10.0) for i, gen in enumerate(gens())]
    (sum(loss for loss, _ in singles) / 2).backward()
    apart = grads()
    assert batched.item() == pytest.approx(sum(loss.item() for loss, _ in singles) / 2, rel=1e-5)
    assert parts["kl"] == pytest.approx(sum(p["kl"] for _, p in singles) / 2, rel=1e-5)
    for a, b in zip(together, apart):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)  # batched convs take other kernels


def test_pooled_latents_hold_every_fourth_frame_coarsened():
    from nova_core.training.vae import pooled_latents

    x = torch.zeros(1, 3, 9, 16, 24)
    x[0, 0, 4, :4, :4] = 1.0  # frame 4, red, one 4x4 cell in the top-left corner
    x[0, 1, 3] = 1.0  # frame 3 is never sampled
    z = pooled_latents(x, 16)
    assert z.shape == (1, 16, 3, 2, 3)
    assert z[0, :, 1, 0, 0].nonzero().flatten().tolist() == [0]  # channel (red, cell 0 of the 2x2 fold)
    assert z[0, 0, 1, 0, 0] == 1.0 and z[0, :, [0, 2]].abs().sum() == 0 and z[0, 12:].abs().sum() == 0
    with pytest.raises(ValueError, match="need 12 channels"):
        pooled_latents(x, 8)


def test_the_latent_anchor_pulls_the_posterior_mean_to_the_pooled_frames():
    from nova_core.training.vae import pooled_latents

    settings = components.ComponentSettings(vae_channels=[8, 8, 16, 16], vae_groups=8, latent_channels=16)
    data = items()

    def anchor_error(vae):
        with torch.no_grad():
            x = to_pixels(data[0])[None]
            return float((vae.encode(x).latent_dist.mean - pooled_latents(x, 16)).pow(2).mean())

    plain, anchored = components.vae(settings, 0), components.vae(settings, 0)
    common = dict(steps=25, batch_size=2, clip_frames=5, lr=3e-3, warmup_steps=5)
    train_vae(plain, data, VAETrainSettings(**common))
    history = train_vae(anchored, data, VAETrainSettings(**common, latent_anchor_weight=1.0))
    assert "anchor" in history[0] and "anchor" not in train_vae(components.vae(settings, 0), data,
                                                                VAETrainSettings(steps=1, clip_frames=5))[0]
    assert anchor_error(anchored) < 0.5 * anchor_error(plain), (anchor_error(anchored), anchor_error(plain))
