"""The cache format: shards + index written atomically, continued, and checked on open."""

import json

import pytest
import torch

from nova_core.training.cache import CacheError, CacheWriter, TrainingCache

HEADER = {"checkpoint": {"name": "x", "latent_size": [8, 12]}, "settings": {"frames": 9, "text_embeddings": True}}


def item(i):
    mean = torch.full((4, 3, 8, 12), float(i))
    return {"source": f"v{i}.mp4", "caption": f"clip {i}", "latent_frames": 3}, {
        "mean": mean, "logvar": -mean, "text": torch.ones(2 + i, 80).half()}


def test_round_trip_in_shards(tmp_path):
    writer = CacheWriter(tmp_path, HEADER, shard_size=2)
    for i in range(5):
        writer.add(*item(i))
    writer.skip("bad.mp4", "not a readable video")
    writer.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"] + [f"shard-0000{i}.safetensors" for i in range(3)]
    cache = TrainingCache(tmp_path)
    assert len(cache) == 5 and cache.has_text and cache.latent_frames() == [3] * 5
    got = cache.tensors(3)
    assert torch.equal(got["mean"], torch.full((4, 3, 8, 12), 3.0)) and got["text"].shape == (5, 80)
    assert json.loads((tmp_path / "index.json").read_text())["skipped"] == [
        {"source": "bad.mp4", "reason": "not a readable video"}]


def test_continuing_a_cache_and_refusing_other_settings(tmp_path):
    writer = CacheWriter(tmp_path, HEADER, shard_size=2)
    for i in range(3):
        writer.add(*item(i))
    # interrupted here: the third item was never flushed; a stale temp file is left
    (tmp_path / "shard-00001.safetensors.tmp").write_bytes(b"partial")
    writer = CacheWriter(tmp_path, HEADER, shard_size=2)
    assert writer.done == {"v0.mp4", "v1.mp4"}
    assert not (tmp_path / "shard-00001.safetensors.tmp").exists()
    writer.add(*item(2))
    writer.flush()
    cache = TrainingCache(tmp_path)
    assert [it["source"] for it in cache.items] == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert len({it["id"] for it in cache.items}) == 3
    other = {"checkpoint": HEADER["checkpoint"], "settings": dict(HEADER["settings"], frames=17)}
    with pytest.raises(CacheError, match="settings.frames: 9 there, 17 now"):
        CacheWriter(tmp_path, other)


def test_fingerprint_follows_the_items(tmp_path):
    writer = CacheWriter(tmp_path, HEADER)
    writer.add(*item(0))
    writer.flush()
    before = TrainingCache(tmp_path).fingerprint
    writer.add(*item(1))
    writer.flush()
    assert TrainingCache(tmp_path).fingerprint != before


def test_unusable_folders(tmp_path):
    with pytest.raises(CacheError, match="not a training cache"):
        TrainingCache(tmp_path)
    CacheWriter(tmp_path, HEADER).flush()
    with pytest.raises(CacheError, match="holds no items"):
        TrainingCache(tmp_path)
    (tmp_path / "index.json").write_text("{broken")
    with pytest.raises(CacheError, match="unreadable"):
        TrainingCache(tmp_path)
