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
    assert "cannot be fetched (no network" in result.err or "HF_HUB_OFFLINE is set" in result.err
    assert "run `nova download BAAI/nova-d48w1024-osp480 --local-dir DIR`, copy DIR here and pass `--model DIR`" \
        in result.err
    assert "did you mean" not in result.err


def test_offline_the_hint_offers_the_demo_model_when_it_is_bundled(nova, tmp_path, monkeypatch):
    from nova_core import demo

    monkeypatch.setattr(demo, "CHECKPOINT", tmp_path / "none")
    assert "--model demo" not in nova("t2v", "x", "--device", "cpu").err
    monkeypatch.setattr(demo, "CHECKPOINT", TINY_T2V)  # a stand-in for the recipe's checkpoint
    result = nova("t2v", "x", "--device", "cpu")
    assert result.code == 1 and "cannot be fetched" in result.err
    assert result.err.rstrip().endswith("or try nova offline with the bundled demo model: `--model demo`")


def test_a_typo_in_a_released_id_gets_did_you_mean(nova, tmp_path):
    result = nova("download", "BAAI/nova-d48w1024-osp48", "--cache-dir", tmp_path / "hf")
    assert result.code == 1 and "(did you mean BAAI/nova-d48w1024-osp480?)" in result.err
    result = nova("t2v", "x", "--model", "baai/nova-d48w1024-sdxl1025", "--device", "cpu")
    assert result.code == 1 and "(did you mean BAAI/nova-d48w1024-sdxl1024?)" in result.err
    from nova_core.hub import did_you_mean

    assert did_you_mean("BAAI/nova-d48w1536-sdxl1024") == "" and did_you_mean("someone/my-finetune") == ""


def test_a_repository_the_hub_does_not_know_gets_did_you_mean(monkeypatch):
    import huggingface_hub
    import pytest

    from nova_core import hub
    from nova_core.errors import ModelNotAvailableError

    class RepositoryNotFoundError(Exception):
        pass

    def snapshot_download(repo_id, **kwargs):
        raise RepositoryNotFoundError(repo_id)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelNotAvailableError, match=r"no such repository .*did you mean BAAI/nova-d48w768-sdxl1024"):
        hub.download("BAAI/nova-d48w786-sdxl1024")


def test_download_into_a_local_dir_gives_a_folder_to_copy(nova, tmp_path, monkeypatch):
    import huggingface_hub

    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked.update(kwargs)
        shutil.copytree(TINY_T2V, kwargs["local_dir"], dirs_exist_ok=True)
        return kwargs["local_dir"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    target = tmp_path / "ckpt"
    result = nova("download", "BAAI/nova-d48w1024-osp480", "--local-dir", target)
    assert result.code == 0, result.err
    assert result.out.strip() == str(target) and asked["local_dir"] == str(target)
    assert "*.py" in asked["ignore_patterns"]
    assert f"--model {target}" in result.err
    made = nova("t2v", "x", "--model", target, "--ar-steps", "1", "--diffusion-steps", "1", "--frames", "5",
                "--quiet", "-o", tmp_path / "v.mp4")
    assert made.code == 0, made.err


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
        "repo_id": "someone/nova-finetune", "kind": None, "resolution": None, "params": None, "notes": "",
        "released": False, "cached": True, "revisions": [COMMIT], "size_on_disk": 0}
    assert rows["BAAI/nova-d48w768-sdxl1024"]["params"] == 365_256_720
    assert "demo" not in rows or rows["demo"]["cached"]
    table = nova("models", "--cache-dir", cache)
    assert "nova download BAAI/nova-d48w768-sdxl1024" in table.err and "someone/nova-finetune" in table.out


def test_models_lists_the_bundled_demo_first(nova, tmp_path, monkeypatch):
    from nova_core import demo

    monkeypatch.setattr(demo, "CHECKPOINT", TINY_T2V)  # a stand-in for the recipe's checkpoint
    rows = [json.loads(line) for line in nova("models", "--cache-dir", tmp_path / "hf", "--json").out.splitlines()]
    size = sum(f.stat().st_size for f in TINY_T2V.rglob("*") if f.is_file())
    assert rows[0] == {"repo_id": "demo", "kind": "video", "resolution": "96x64", "params": demo.parameters(),
                       "notes": "bundled: offline, seconds on a CPU; drawn shapes only", "released": False,
                       "cached": True, "revisions": [], "size_on_disk": size}
    table = nova("models", "--cache-dir", tmp_path / "hf").out
    assert f"{demo.parameters() / 1e6:.1f}M" in table and f"{size / 1e6:.1f} MB" in table


def test_models_at_80_columns_keeps_ids_whole_and_sizes_as_the_zoo(nova, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    table = nova("models", "--cache-dir", tmp_path / "hf")
    assert table.code == 0 and max(map(len, table.out.splitlines())) <= 80
    from nova_core.released import CHECKPOINTS

    lines = table.out.splitlines()
    for repo in CHECKPOINTS:
        assert any(repo in line for line in lines), repo
    sizes = {repo: next(line for line in lines if f" {repo} " in line).split("│")[3].strip() for repo in CHECKPOINTS}
    assert sizes == {"BAAI/nova-d48w1024-osp480": "0.6B", "BAAI/nova-d48w768-sdxl1024": "0.3B",
                     "BAAI/nova-d48w1024-sdxl1024": "0.6B", "BAAI/nova-d48w1536-sdxl1024": "1.4B",
                     "BAAI/nova-d48w1024-sd512": "0.6B"}


def test_model_demo_brings_the_demo_preset(nova, monkeypatch):
    from nova_core import demo

    monkeypatch.setattr(demo, "CHECKPOINT", TINY_T2V)  # a stand-in for the recipe's checkpoint
    result = nova("t2v", "a red circle moving right on a black background", "--model", "demo", "--json", "--quiet",
                  "--device", "cpu", "--frames", 9)
    assert result.code == 0, result.err
    record = result.records()[0]
    assert record["settings"]["presets"] == ["video", "demo"]
    assert (record["settings"]["ar_steps"], record["settings"]["diffusion_steps"]) == (8, 10)
    assert record["settings"]["flow"] == 1.2 and record["settings"]["frames"] == 9  # the flag over the preset
    image = nova("t2i", "a red circle moving right on a black background", "--model", "demo", "--json", "--quiet",
                 "--device", "cpu")
    assert image.code == 0, image.err
    assert image.records()[0]["settings"]["presets"] == ["image", "demo"]
