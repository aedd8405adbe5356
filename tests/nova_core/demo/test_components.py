"""The demo checkpoint's parts: the tokenizer covers the grammar, nova's loader reads them, the
geometry is 96x160 -> 12x20 latents, the temporal encoder sees all of them, and the whole
checkpoint fits 25 MB."""

import json

import pytest

import torch

from nova_core import loading
from nova_core.demo import components
from nova_cli.demo.dataset import scene_for
from nova_core.demo.scenes import FRAME_SIZE
from nova_core.text import encode_prompts
from nova_core.training.encode import checkpoint_geometry


def test_checkpoint_parts_load_with_novas_loader(tmp_path):
    settings = components.ComponentSettings()
    folder = components.save_checkpoint(tmp_path / "c", vae_model=components.vae(settings, 0), settings=settings, seed=0)
    tokenizer = loading.load_tokenizer(folder)
    encoder = loading.load_text_encoder(folder, torch.float32)
    assert not any(p.requires_grad for p in encoder.parameters())
    unk = tokenizer.token_id(components.UNK)
    captions = [scene_for(0, 0, i).caption for i in range(48)]
    ids = [tokenizer.ids(c) for c in captions]
    assert all(len(row) == 9 and unk not in row for row in ids)
    assert tokenizer.ids("A RED circle zebra")[:2] == tokenizer.ids("a red")
    assert tokenizer.ids("zebra") == [unk]
    hidden, lengths = encode_prompts(tokenizer, encoder, captions[:2], settings.text_len)
    assert hidden.shape == (2, settings.text_len, settings.text_width) and lengths == [9, 9]

    geo = checkpoint_geometry(folder)
    assert geo.pixel_size == FRAME_SIZE and geo.latent_size == (12, 20) and geo.num_tokens == 60
    vae = loading.load_vae(folder, "AutoencoderKLOpenSora", torch.float32)
    latents = vae.encode(torch.zeros(1, 3, 33, *FRAME_SIZE)).latent_dist.mean
    assert latents.shape == (1, settings.latent_channels, 9, 12, 20)  # 4x time, 8x space
    assert loading.load_transformer(folder, torch.float32).geometry == geo
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total <= 25 * 2**20
    assert json.loads((folder / "model_index.json").read_text())["tokenizer"] == ["transformers", "PreTrainedTokenizerFast"]


def test_the_temporal_encoder_sees_every_latent_position(monkeypatch):
    # its 4x4 patches drop whatever does not tile the grid (at 80x128, the bottom 16 px): an object
    # there would be invisible to every later frame
    from nova_core.transformer import NOVATransformer3DModel

    settings = components.ComponentSettings()
    torch.manual_seed(0)
    model = NOVATransformer3DModel.from_config(components.transformer_config(settings)).eval()
    height, width = model.geometry.latent_size
    prefix, latents = torch.zeros(1, 2, model.geometry.temporal.width), torch.randn(1, settings.latent_channels, 2, height, width)
    with torch.no_grad():
        before = model.temporal_conditions(prefix, latents)[:, 1]
        for y, x in [(0, 0), (height - 1, 0), (0, width - 1), (height - 1, width - 1)]:
            changed = latents.clone()
            changed[:, :, 0, y, x] += 3
            assert not torch.allclose(model.temporal_conditions(prefix, changed)[:, 1], before), (y, x)
    monkeypatch.setattr(components, "FRAME_SIZE", (80, 128))
    with pytest.raises(ValueError, match="multiple of 32"):
        components.transformer_config(settings)


def test_the_scheduler_does_not_clip_unit_variance_latents():
    # diffusers clips each step's x0 to [-1, 1] by default; the demo's latents have std 1
    config = components.scheduler().config
    assert config.clip_sample is False and config.beta_schedule == "scaled_linear"


def test_the_random_parts_are_seeded():
    settings = components.ComponentSettings()
    a, b = components.text_encoder(settings, 3), components.text_encoder(settings, 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = components.text_encoder(settings, 4)
    assert not torch.equal(a.embed_tokens.weight, c.embed_tokens.weight)



@pytest.mark.slow
def test_the_vae_learns_flat_colours_quickly():
    # Most of every demo frame is one flat colour; one channel per GroupNorm group strips each
    # channel's mean, and then even two flat frames take hundreds of steps (MSE ~0.5 after 80).
    import numpy as np
    import torch.nn.functional as F

    from nova_core.training.vae import to_pixels

    def after_training(groups):
        frames = [to_pixels(np.full((5, 32, 48, 3), v, np.uint8))[None] for v in (15, 240)]
        model = components.vae(components.ComponentSettings(vae_groups=groups), 0).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(80):
            x = frames[step % 2]
            loss = F.mse_loss(model.decode(model.encode(x).latent_dist.mean).sample, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return max(F.mse_loss(model.decode(model.encode(x).latent_dist.mean).sample, x).item() for x in frames)

    assert after_training(components.ComponentSettings().vae_groups) < 0.1


def test_a_fresh_vae_starts_with_a_narrow_posterior():
    # With log-variance ~0 the decoder learns to ignore its noisy latent (posterior collapse).
    import numpy as np

    from nova_core.training.vae import to_pixels

    settings = components.ComponentSettings()
    x = to_pixels(scene_for(0, 0, 0).render()[:5])[None]
    with torch.no_grad():
        posterior = components.vae(settings, 0).encode(x).latent_dist
    assert np.allclose(posterior.logvar.numpy(), settings.initial_logvar, atol=0.5)
    assert float(posterior.mean.std()) > 4 * float(posterior.std.mean())  # 4.5x at 16 latent channels


def test_a_fresh_vae_reads_each_latent_from_its_own_frame():
    """Started per frame, latent k of a fresh VAE depends on input frame 4k (and on the others only
    through the GroupNorm statistics), so an object's motion is not smeared back towards frame 0."""
    from nova_core.training.vae import to_pixels
    from nova_core.vae_opensora import CausalConv3d

    model = components.vae(components.ComponentSettings(), 0)
    temporal = [m for m in model.modules() if isinstance(m, CausalConv3d) and m.kernel_size[0] > 1]
    assert temporal and all(not m.weight[:, :, :-1].any() for m in temporal)
    clip = scene_for(0, 0, 0).render()[:9]
    with torch.no_grad():
        before = model.encode(to_pixels(clip)[None]).latent_dist.mean
        for frame, latent in ((4, 1), (8, 2)):
            changed = clip.copy()
            changed[frame] = 255 - changed[frame]
            after = model.encode(to_pixels(changed)[None]).latent_dist.mean
            moved = (after - before).abs().flatten(3).mean(3)[0].mean(0)  # per latent frame
            others = torch.cat([moved[:latent], moved[latent + 1 :]])
            # ~3.5x; with PyTorch's default init the change spreads (frame 4 moves latent 2 the most)
            assert moved[latent] > 3 * others.max(), (frame, moved)
