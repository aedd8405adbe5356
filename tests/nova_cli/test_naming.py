"""Output names: from the prompt and seed, unique for commands, stable for batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova_cli.errors import CliError, UsageError
from nova_cli.naming import check_writable, default_stem, plan_outputs, sidecar_path, slug


@pytest.mark.parametrize("text, expected", [
    ("A red fox, at dawn!", "a-red-fox-at-dawn"), ("Café au lait", "cafe-au-lait"), ("", ""), ("!!!", ""),
    ("word " * 30, "-".join(["word"] * 9)), ("x" * 60, "x" * 48), ("日本 tokyo", "日本-tokyo"),
    ("Straße in Köln", "straße-in-koln"), ("हिन्दी भाषा", "हिन्दी-भाषा"), ("Ｆｕｌｌ ﬁne", "full-fine"),
    ("../a/b\\c:d", "a-b-c-d"), ("🦊 🌲", ""), ("\u202eevil\u200b\x00", "evil"), ("東" * 60, "東" * 32),
])
def test_slug(text, expected):
    assert slug(text) == expected


def test_names_are_safe_file_names():
    """Whatever the prompt, a name has no separators, dots or controls and fits a file system's 255 bytes."""
    for text in ("日本の美しい風景、" * 30, "a/b/../c", "é" * 300, "\n\t\r", "x" * 500, "👍🏽" * 40):
        name = default_stem("t2v", text, None, 2**63 - 1) + "-12345678.mp4.json"
        assert "/" not in name and "\\" not in name and ".." not in name.removesuffix(".mp4.json")
        assert all(c.isprintable() for c in name) and len(name.encode()) < 200


def test_default_stems():
    assert default_stem("t2v", "A fox.", None, 3) == "a-fox-s3"
    assert default_stem("t2i", "", None, 0) == "untitled-s0"
    assert default_stem("i2v", "it moves", Path("in/My Photo.JPG"), 1) == "my-photo-it-moves-s1"
    assert default_stem("i2v", None, Path("in/My Photo.JPG"), 1) == "my-photo-s1"
    assert default_stem("extend", None, Path("clip.mp4"), 2) == "clip-ext-s2"


def test_unique_names_skip_outputs_and_sidecars(tmp_path):
    (tmp_path / "fox-s1.mp4").touch()
    sidecar_path(tmp_path / "fox-s1-2.mp4").touch()  # a stale sidecar also takes the name
    paths = plan_outputs("t2v", str(tmp_path), ["fox-s1"], unique=True, overwrite=False)
    assert paths == [tmp_path / "fox-s1-3.mp4"]
    assert plan_outputs("t2v", str(tmp_path), ["fox-s1"], unique=True, overwrite=True) == [tmp_path / "fox-s1.mp4"]
    assert plan_outputs("t2v", str(tmp_path), ["fox-s1"], unique=False, overwrite=False) == [tmp_path / "fox-s1.mp4"]


def test_out_as_file_or_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert plan_outputs("t2i", "a/b.PNG", ["x"], unique=True, overwrite=False) == [tmp_path / "a/b.PNG"]
    assert plan_outputs("t2i", "shots", ["x-s1", "x-s2"], unique=True, overwrite=False) == [
        tmp_path / "shots/x-s1.png", tmp_path / "shots/x-s2.png"]
    assert plan_outputs("t2v", "v.d/", ["x"], unique=True, overwrite=False) == [tmp_path / "v.d/x.mp4"]
    with pytest.raises(UsageError, match="t2i writes PNG files"):
        plan_outputs("t2i", "a.jpg", ["x"], unique=True, overwrite=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "shots").exists()  # made only when writing


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "deeper")
    (tmp_path / "file").touch()
    with pytest.raises(CliError, match="is a file"):
        check_writable(tmp_path / "file" / "sub")
    with pytest.raises(CliError, match="not writable"):
        check_writable(Path("/proc/nova"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
