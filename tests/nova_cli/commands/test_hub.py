"""nova download and nova models, offline: only the needed files are asked for, the cache is listed."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from tests.conftest import TINY_T2V

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(root: Path, repo: str) -> Path:
    """A Hugging Face cache holding ``repo`` (the tiny checkpoint's files) at one commit."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / COMMIT
    shutil.copytree(TINY_T2V, snapshot)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    (repo_dir / "blobs").mkdir()
    return snapshot


def test_download_asks_only_for_the_checkpoint_files(nova, tmp_path, monkeypatch):
    import huggingface_hub

    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked.update(kwargs, repo_id=repo_id)
        return str(fake_cache(Path(kwargs["cache_dir"]), repo_id))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    result = nova("download", "BAAI/nova-d48w1024-osp480", "--revision", "v1", "--cache-dir", tmp_path / "hf")
    assert result.code == 0, result.err
    assert result.out.strip() == str(tmp_path / "hf" / "models--BAAI--nova-d48w1024-osp480" / "snapshots" / COMMIT)
    assert asked["repo_id"] == "BAAI/nova-d48w1024-osp480" and asked["revision"] == "v1"
    assert "*/*.safetensors" in asked["allow_patterns"] and "*.py" in asked["ignore_patterns"]
    assert "--revision " + COMMIT in result.err  # how to pin what was fetched


def test_download_offline_fails_fast_with_the_hint(nova, tmp_path):
    started = time.perf_counter()
    result = nova("download", "video", "--cache-dir", tmp_path / "hf")  # a preset name: its model
    assert time.perf_counter() - started < 10
    assert result.code == 1 and "Traceback" not in result.err
    assert "run `nova download BAAI/nova-d48w1024-osp480` where there is a network" in result.err


def test_download_needs_a_repo_id(nova, tmp_path):
    result = nova("download", str(TINY_T2V))
    assert result.code == 2 and "local folders need no download" in result.err


def test_models_lists_released_and_cached(nova, tmp_path):
    cache = tmp_path / "hf"
    fake_cache(cache, "BAAI/nova-d48w1024-osp480")
    fake_cache(cache, "someone/nova-finetune")
    result = nova("models", "--cache-dir", cache, "--json")
    assert result.code == 0, result.err
    rows = {r["repo_id"]: r for r in map(json.loads, result.out.splitlines())}
    assert len([r for r in rows.values() if r["released"]]) == 5
    assert rows["BAAI/nova-d48w1024-osp480"]["cached"] is True
    assert rows["BAAI/nova-d48w1024-osp480"]["revisions"] == [COMMIT]
    assert rows["BAAI/nova-d48w1024-sd512"]["cached"] is False
    assert rows["someone/nova-finetune"] | {"size_on_disk": 0} == {
        "repo_id": "someone/nova-finetune", "kind": None, "resolution": None, "notes": "", "released": False,
        "cached": True, "revisions": [COMMIT], "size_on_disk": 0}
    table = nova("models", "--cache-dir", cache)
    assert "nova download BAAI/nova-d48w768-sdxl1024" in table.out and "someone/nova-finetune" in table.out
