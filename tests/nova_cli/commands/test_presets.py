"""nova presets: bundled and user presets, what they set, and how they layer under flags."""

from __future__ import annotations

import os
from pathlib import Path

from tests.nova_cli.conftest import T2V, read_mp4


def user_presets() -> Path:
    folder = Path(os.environ["NOVA_CONFIG_DIR"]) / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_lists_the_bundled_presets(nova):
    result = nova("presets", "--json")
    assert result.code == 0
    presets = {record.pop("name"): record for record in result.records()}  # JSON Lines, one per preset
    assert set(presets) == {"video", "image", "fast", "quality", "low-memory", "demo"}
    assert presets["demo"]["settings"] | {"flow": 0} == {
        "model": "demo", "frames": 33, "fps": 12.0, "ar_steps": 8, "diffusion_steps": 10, "guidance": 5.0,
        "negative_prompt": "", "flow": 0}
    assert presets["quality"]["settings"] == {"ar_steps": 128, "diffusion_steps": 100, "guidance": 7.0}
    assert presets["low-memory"]["settings"] == {"low_memory": True}
    assert presets["video"]["settings"]["model"] == "BAAI/nova-d48w1024-osp480"
    assert presets["video"]["settings"]["frames"] == 33 and presets["fast"]["settings"]["frames"] == 17
    assert presets["image"]["settings"]["model"] == "BAAI/nova-d48w1024-sdxl1024"
    assert all(p["origin"] == "bundled" for p in presets.values())


def test_table_and_user_folder(nova):
    (user_presets() / "mine.toml").write_text('description = "my drafts"\nar-steps = 3\nflow = 7\n')
    (user_presets() / "fast.toml").write_text('description = "my fast"\nar_steps = 1\n')
    result = nova("presets")
    assert result.code == 0
    for text in ("mine", "my drafts", "ar_steps=3", "flow=7.0", "my fast", "user"):
        assert text in result.out
    assert str(user_presets()) in result.err
    one = nova("presets", "fast", "--json").records()
    assert one == [{"name": "fast", "description": "my fast", "origin": "user",
                    "path": str(user_presets() / "fast.toml"), "settings": {"ar_steps": 1}}]


def test_user_preset_drives_a_run_and_model_can_name_a_preset(nova, tmp_path):
    from tests.conftest import TINY_T2V

    (user_presets() / "tiny.toml").write_text(
        f'model = "{TINY_T2V}"\nframes = 5\nar_steps = 2\ndiffusion_steps = 2\nguidance = 2.5\nflow = 1\n')
    result = nova("t2v", "mist", "--model", "tiny", "--json", "--quiet", "--flow", 3)
    assert result.code == 0, result.err
    record = result.records()[0]
    assert record["model"]["id"] == str(TINY_T2V)
    assert record["settings"]["presets"] == ["video", "tiny"]
    assert record["settings"]["guidance"] == 2.5 and record["settings"]["flow"] == 3.0  # flag over preset
    assert len(read_mp4(record["path"])[0]) == 5


def test_presets_combine_in_order(nova):
    result = nova("t2v", "x", *T2V, "--preset", "quality,fast", "-p", "low-memory", "--device", "tpu")
    assert "--device tpu" in result.err  # resolved up to the device: the layering itself was valid
    from nova_cli.presets import PresetBook
    from nova_cli.settings import combine

    settings = combine("t2v", {"preset": ["quality,fast", "low-memory"], "ar_steps": 5}, PresetBook.default())
    assert settings.presets == ("video", "quality", "fast", "low-memory")
    assert (settings.ar_steps, settings.diffusion_steps, settings.guidance) == (5, 15, 7.0)
    assert settings.frames == 17 and settings.low_memory is True


def test_unknown_key_in_a_preset(nova):
    (user_presets() / "odd.toml").write_text("colour = 'blue'\n")
    result = nova("presets", "odd")
    assert result.code == 2 and "unknown setting 'colour'" in result.err and "odd.toml" in result.err
    (user_presets() / "odd.toml").write_text("frames = [\n")
    result = nova("presets", "odd")
    assert result.code == 2 and "cannot read it" in result.err


def test_a_user_video_preset_replaces_the_bundled_one(nova):
    from tests.conftest import TINY_T2V

    (user_presets() / "video.toml").write_text(f'model = "{TINY_T2V}"\nframes = 5\nar_steps = 1\ndiffusion_steps = 1\n')
    result = nova("t2v", "dunes", "--json", "--quiet")
    assert result.code == 0, result.err
    settings = result.records()[0]["settings"]
    assert (settings["frames"], settings["ar_steps"], settings["flow"], settings["guidance"]) == (5, 1, 5.0, 5.0)


def test_a_broken_preset_file_is_reported_and_the_others_still_work(nova):
    (user_presets() / "broken.toml").write_text("ar_steps = [\n")
    (user_presets() / "bad.toml").write_text("ar_steps = 0\n")
    (user_presets() / "good.toml").write_text("ar_steps = 3\n")
    listing = nova("presets")
    assert listing.code == 0 and "good" in listing.out and "quality" in listing.out
    assert "broken" not in listing.out
    warnings = [line for line in listing.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert any("broken.toml" in w and "cannot read it" in w for w in warnings)
    assert any("bad.toml" in w and "must be 1 or more" in w for w in warnings)

    records = {r["name"]: r for r in nova("presets", "--json").records()}
    assert records["good"]["settings"] == {"ar_steps": 3} and "error" not in records["good"]
    assert "broken.toml" in records["broken"]["error"] and records["bad"]["path"].endswith("bad.toml")

    used = nova("t2v", "x", *T2V, "--frames", "5", "-p", "good", "--json", "--quiet")
    assert used.code == 0 and used.records()[0]["settings"]["ar_steps"] == 2  # flag over the preset
    for name in ("broken", "bad"):
        result = nova("t2v", "x", *T2V, "-p", name)
        assert result.code == 2 and result.err.count("nova: error:") == 1
        assert f"{name}.toml" in result.err and ("bad.toml" if name == "broken" else "broken.toml") not in result.err


def test_effective_defaults_name_the_preset_that_sets_them():
    from nova_cli.presets import PresetBook, effective_defaults

    video = effective_defaults("t2v", PresetBook.default())
    assert video["frames"] == (33, "video") and video["ar_steps"] == (64, "video")
    assert video["device"] == ("auto", None) and "seed" not in video and "negative_prompt" not in video
    (user_presets() / "image.toml").write_text("ar_steps = [\n")  # broken: the fallbacks only
    image = effective_defaults("t2i", PresetBook.default())
    assert image["ar_steps"] == (64, None) and "model" not in image
