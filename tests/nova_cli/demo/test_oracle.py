"""The oracle-latent probe's encoding: the detector reads its round trips, and a prepared cache
rewritten with it trains (the trainer accepts it against the base checkpoint)."""

import json

import numpy as np
import pytest
import torch

from nova_core.demo.scenes import parse_caption, random_scene
from tests.nova_cli.demo.oracle import build_cache, decode, encode, probe
from tests.nova_core.demo import detector


def test_round_trips_read_back_as_their_captions():
    counts = dict(colour=0, direction=0, background=0)
    for i in range(12):
        scene = random_scene(np.random.default_rng([5, i]))
        latents = encode(scene.render())
        assert latents.shape == (16, 9, 12, 20) and latents[12:].abs().max() == 0
        want, read = parse_caption(scene.caption), detector.read(decode(latents)).attributes()
        for key in counts:
            counts[key] += read[key] == want[key]
    assert counts == dict(colour=12, direction=12, background=12)


def test_latent_k_holds_frame_4k():
    frames = np.zeros((9, 96, 160, 3), np.uint8)
    frames[4, :8, :8] = 255  # only frame 4 has a bright corner
    latents = encode(frames)
    assert latents.size(1) == 3 and latents[:12, 1, 0, 0].min() > 0.9
    assert latents[:12, [0, 2], 0, 0].max() < -0.9


@pytest.mark.slow
def test_a_rewritten_cache_is_accepted_by_training(tmp_path):
    from nova_cli.demo.dataset import write_dataset
    from nova_cli.demo.recipe import nova
    from nova_core.demo import components

    torch.set_num_threads(1)
    data, base = tmp_path / "data", tmp_path / "base"
    write_dataset(data, 2, 1, 0)
    components.save_checkpoint(base, vae_model=components.vae(components.ComponentSettings(), 0),
                               settings=components.ComponentSettings(), seed=0)
    nova("prepare", data, tmp_path / "cache", "--model", base, "--text-embeddings", "--device", "cpu")
    scale = build_cache(tmp_path / "cache", data, base, tmp_path / "oracle")
    assert json.loads((base / "vae" / "config.json").read_text())["scaling_factor"] == scale
    nova("train", "--model", base, "--scratch", "--cache", tmp_path / "oracle", "--output-dir", tmp_path / "run",
         "--steps", 1, "--batch-size", 2, "--mixed-precision", "no", "--device", "cpu")
    checkpoint = tmp_path / "run" / "checkpoint-000001"
    assert (checkpoint / "transformer").is_dir()
    result = probe(checkpoint, tmp_path / "oracle", prompts=1, ar_steps=2, diffusion_steps=2)
    assert set(result) == {"alignment", "alignment_uniform", "object_evidence", "history_reach", "t2i", "t2v", "i2v"}
    assert set(result["history_reach"]) == {"temporal", "condition", "block2", "block3", "spatial"}
    assert len(result["alignment"]) == 2 and result["alignment_uniform"] == pytest.approx(1 / 15, abs=1e-3)
    # a contrast: below 0 when an untrained head's estimate strays more off the object than on it
    assert -5 < result["object_evidence"] < 5 and set(result["i2v"]) >= {"colour", "direction", "present"}
    assert (tmp_path / "run" / "checkpoint-000001-oracle.png").is_file()


def test_own_cells_map_each_token_to_the_condition_token_over_it():
    from tests.nova_cli.demo.oracle import own_cells

    cells = own_cells(6, 10).view(6, 10)
    assert cells[0, 0] == cells[1, 1] == 0 and cells[0, 2] == 1 and cells[2, 0] == 5 and cells[5, 9] == 14


def test_alignment_reads_uniform_attention_as_one_over_the_condition_tokens():
    from nova_core.demo import components
    from nova_core.transformer import NOVATransformer3DModel
    from tests.nova_cli.demo.oracle import alignment

    torch.manual_seed(0)
    model = NOVATransformer3DModel.from_config(components.transformer_config(components.ComponentSettings())).eval()
    for block in model.image_encoder.blocks:
        torch.nn.init.zeros_(block.attn.qkv.weight)  # equal queries and keys: every key weighs the same
    latents = torch.randn(1, 16, 9, 12, 20)
    prefix = model.prefix(torch.randn(1, 16, 64), torch.ones(1))
    assert alignment(model, latents, prefix) == pytest.approx([1 / 15, 1 / 15], abs=1e-6)
    torch.manual_seed(0)
    fresh = NOVATransformer3DModel.from_config(components.transformer_config(components.ComponentSettings())).eval()
    assert all(0.02 < share < 0.2 for share in alignment(fresh, latents, prefix))


def _demo_model(**changes):
    from nova_core.demo import components
    from nova_core.transformer import NOVATransformer3DModel

    torch.manual_seed(0)
    config = components.transformer_config(components.ComponentSettings()) | changes
    return NOVATransformer3DModel.from_config(config).eval()


def test_history_reach_finds_where_the_scale_shift_layer_hides_the_earlier_frames():
    from nova_core.training.init import initialise
    from tests.nova_cli.demo.oracle import history_reach, mirror

    scene = random_scene(np.random.default_rng([5, 0]), direction="right")
    frames = scene.render()
    latents, mirrored = encode(frames)[None], encode(mirror(frames, "right"))[None]
    prefix_of = lambda model: model.prefix(torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(1)), torch.ones(1))
    # the aligned init starts the scale-shift projection at zero: every later frame's condition is
    # the BOV anchor, whatever came before, though the temporal encoder itself sees the change
    model = _demo_model()
    initialise(model, "aligned")
    reach = history_reach(model, latents, mirrored, prefix_of(model))
    assert set(reach) == {"temporal", "condition", "block2", "block3", "spatial"}
    assert reach["temporal"] > 0.1 and reach["condition"] == reach["spatial"] == 0
    # without the layer (rank 0) the temporal features go to the spatial encoder as they are, but
    # the aligned init also starts every spatial block as the identity: the hidden tokens see none of it
    bare = _demo_model(video_mixer_rank=0)
    initialise(bare, "aligned")
    reach = history_reach(bare, latents, mirrored, prefix_of(bare))
    assert reach["condition"] == pytest.approx(reach["temporal"]) and reach["condition"] > 0.1
    assert reach["block2"] == reach["spatial"] == 0
    # with torch's init the spatial blocks pass a trace of it on from the start (uniform attention)
    fresh = _demo_model(video_mixer_rank=0)
    assert 0 < history_reach(fresh, latents, mirrored, prefix_of(fresh))["spatial"] < 0.05
    # the same clip against itself: nothing changes anywhere
    assert set(history_reach(bare, latents, latents, prefix_of(bare)).values()) == {0.0}


def test_mirror_sends_the_object_the_other_way():
    from tests.nova_cli.demo.oracle import mirror

    scene = random_scene(np.random.default_rng([5, 1]), direction="up")
    flipped = detector.read(mirror(scene.render(), "up"))
    assert flipped.direction == "down"
