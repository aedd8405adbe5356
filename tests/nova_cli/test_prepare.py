"""`nova prepare`: captioned media -> a training cache; bad files reported, interrupted runs resume."""

import json

import pytest
import torch

from nova_cli.media import fit_to_size, measure_motion_flow, read_video
from nova_core.training.cache import TrainingCache
from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_cli.helpers import run_cli, write_image, write_video


@pytest.fixture
def media(tmp_path):
    folder = tmp_path / "media"
    (folder / "more").mkdir(parents=True)
    write_video(folder / "pan.mp4", 20, fps=24)
    (folder / "pan.txt").write_text("moving stripes, fast pan\n")
    write_video(folder / "more" / "slow.mp4", 8, fps=12, speed=1)
    (folder / "more" / "slow.txt").write_text("slow stripes")
    (folder / "broken.mp4").write_bytes(b"\x00not a video" * 64)
    (folder / "broken.txt").write_text("a corrupt file")
    write_image(folder / "photo.png")
    (folder / "photo.txt").write_text("colourful noise")
    write_video(folder / "uncaptioned.mp4", 8)
    return folder


def prepare(capsys, source, output, *extra, model=TINY_T2V):
    return run_cli(capsys, "prepare", source, output, "--model", model, "--frames", "5", "--shard-size", "2", *extra)


def test_corrupt_video_is_reported_and_the_rest_cached(media, tmp_path, capsys):
    code, _, err = prepare(capsys, media, tmp_path / "cache")
    assert code == 0, err
    assert "skipped broken.mp4: not a readable video" in err
    assert "skipped uncaptioned.mp4: no caption: expected uncaptioned.txt beside it" in err
    assert "cached 3 new items, 3 in total" in err and "skipped 2" in err
    cache = TrainingCache(tmp_path / "cache")
    items = {it["source"]: it for it in cache.items}
    assert set(items) == {"pan.mp4", "more/slow.mp4", "photo.png"}
    pan, slow, photo = items["pan.mp4"], items["more/slow.mp4"], items["photo.png"]
    assert (pan["stride"], slow["stride"]) == (2, 1)  # auto stride: 24 fps -> every 2nd frame (12 fps)
    assert pan["caption"] == "moving stripes, fast pan" and pan["latent_frames"] == 2 and photo["latent_frames"] == 1
    frames, fps = read_video(media / "pan.mp4")
    assert pan["motion_flow"] == pytest.approx(measure_motion_flow(frames[:9], fps, (64, 96)))  # as `nova flow`
    assert pan["motion_flow"] > slow["motion_flow"] > 0 and photo["motion_flow"] == 0
    moments = cache.tensors(cache.items.index(pan))
    assert moments["mean"].shape == moments["logvar"].shape == (4, 2, 8, 12)
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert {s["source"] for s in index["skipped"]} == {"broken.mp4", "uncaptioned.mp4"}


def test_moments_are_the_vae_posterior_of_the_cropped_clip(media, tmp_path, capsys):
    from nova_core.loading import load_vae

    assert prepare(capsys, media, tmp_path / "cache", "--stride", "3")[0] == 0
    cache = TrainingCache(tmp_path / "cache")
    pan = next(i for i, it in enumerate(cache.items) if it["source"] == "pan.mp4")
    frames, _ = read_video(media / "pan.mp4")
    clip, note = fit_to_size(frames[0:13:3], (64, 96))
    assert "center-cropped 120x72" in note
    vae = load_vae(TINY_T2V, "AutoencoderKLOpenSora", torch.float32)
    x = torch.from_numpy(clip).float().sub(127.5).div(127.5).permute(3, 0, 1, 2)[None]
    with torch.no_grad():
        expected = vae.encode(x).latent_dist
    got = cache.tensors(pan)
    assert torch.allclose(got["mean"], expected.mean[0], atol=1e-5)
    assert torch.allclose(got["logvar"], expected.logvar[0], atol=1e-5)


def test_an_interrupted_run_resumes_without_duplicates(media, tmp_path, capsys, monkeypatch):
    from nova_core.training.encode import Encoder

    moments, calls = Encoder.moments, []

    def interrupt_on_third(self, frames):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return moments(self, frames)

    monkeypatch.setattr(Encoder, "moments", interrupt_on_third)
    code, _, err = prepare(capsys, media, tmp_path / "cache", "--shard-size", "1")
    assert code == 130 and "interrupted: 2 items are cached" in err
    assert len(TrainingCache(tmp_path / "cache")) == 2
    monkeypatch.setattr(Encoder, "moments", moments)
    code, _, err = prepare(capsys, media, tmp_path / "cache", "--shard-size", "1")
    assert code == 0 and "2 of 5 items already cached, continuing" in err and "cached 1 new items, 3 in total" in err
    cache = TrainingCache(tmp_path / "cache")
    assert sorted(it["source"] for it in cache.items) == ["more/slow.mp4", "pan.mp4", "photo.png"]
    assert [it["id"] for it in cache.items] == ["000000", "000001", "000002"]
    code, _, err = prepare(capsys, media, tmp_path / "cache", "--frames", "9")
    assert code == 1 and "prepared with other settings (settings.frames: 5 there, 9 now)" in err


def test_manifest_text_embeddings_and_image_checkpoints(media, tmp_path, capsys):
    from nova_core.text import encode_prompts, load_text_encoder, load_tokenizer

    manifest = tmp_path / "list.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"path": str(media / "photo.png"), "caption": "a photo"}),
        json.dumps({"path": "media/pan.mp4", "caption": "a pan"}),
        "not json",
        json.dumps({"path": "media/missing.png", "caption": "gone"}),
    ]))
    code, _, err = prepare(capsys, manifest, tmp_path / "cache", "--text-embeddings", model=TINY_T2I)
    assert code == 0, err
    assert "skipped media/pan.mp4: a video, but" in err and "is an image checkpoint" in err
    assert "skipped list.jsonl line 3: expected" in err and "skipped media/missing.png: no such file" in err
    cache = TrainingCache(tmp_path / "cache")
    assert [it["caption"] for it in cache.items] == ["a photo"] and cache.has_text
    hidden, lengths = encode_prompts(load_tokenizer(TINY_T2I / "tokenizer"),
                                     load_text_encoder(TINY_T2I / "text_encoder", torch.float32), ["a photo"], 16)
    rows = cache.tensors(0)["text"]
    assert rows.dtype == torch.float16 and rows.shape == (lengths[0], 80)
    assert torch.allclose(rows.float(), hidden[0, : lengths[0]], atol=1e-2)


@pytest.mark.parametrize("argv, message", [
    (["--frames", "7"], "--frames must be 1 + 4k (the VAE compresses time 4x): 7 is not; nearest valid counts: 5 or 9"),
    (["--stride", "0"], "--stride must be 'auto' or a whole number >= 1, got '0'"),
])
def test_bad_options_are_usage_errors(media, tmp_path, capsys, argv, message):
    code, _, err = run_cli(capsys, "prepare", media, tmp_path / "c", "--model", TINY_T2V, *argv)
    assert code == 2 and err.strip() == f"nova: error: {message}"


def test_missing_source_and_nothing_usable(tmp_path, capsys):
    code, _, err = run_cli(capsys, "prepare", tmp_path / "nope", tmp_path / "c", "--model", TINY_T2V)
    assert code == 2 and err.strip().endswith("not a folder or a .jsonl manifest") and len(err.strip().splitlines()) == 1
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "x.mp4").write_bytes(b"junk")
    (tmp_path / "only" / "x.txt").write_text("junk")
    code, _, err = run_cli(capsys, "prepare", tmp_path / "only", tmp_path / "c", "--model", TINY_T2V)
    assert code == 1 and "nova: error: nothing could be cached" in err
    assert "skipped x.mp4: not a readable video (OSError)" in err.splitlines()
