"""Atomic writes: complete files under their real names, or nothing at all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nova_cli.errors import CliError
from nova_cli.writing import commit, write_mp4, write_png
from tests.nova_cli.conftest import files, read_mp4


def video(count=5, height=64, width=96):
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_mp4_keeps_sizes_that_are_not_multiples_of_16(tmp_path):
    write_mp4(tmp_path / "v.mp4", video(7, 66, 98), 12, comment="hello")
    frames, fps, size = read_mp4(tmp_path / "v.mp4")
    assert frames.shape == (7, 66, 98, 3) and fps == 12 and size == (98, 66)


def test_mp4_is_h264_yuv420p(tmp_path):
    import subprocess

    import imageio_ffmpeg

    write_mp4(tmp_path / "v.mp4", video(), 12)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "v.mp4")],
                           capture_output=True, text=True).stderr
    assert "h264" in probe and "yuv420p" in probe


def test_odd_sizes_are_refused(tmp_path):
    with pytest.raises(CliError, match="must be even"):
        write_mp4(tmp_path / "v.mp4", video(2, 65, 96), 12)


def test_commit_writes_media_and_sidecar(tmp_path):
    image = video(1)[0]
    commit(tmp_path / "out" / "a.png", lambda p: write_png(p, image, {"nova": "{}"}), {"seed": 1}, overwrite=False)
    assert files(tmp_path) == ["out/a.png", "out/a.png.json"]
    assert json.loads((tmp_path / "out" / "a.png.json").read_text()) == {"seed": 1}
    assert oct((tmp_path / "out" / "a.png").stat().st_mode & 0o777) != oct(0o600)  # like any new file


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError, OSError])
def test_a_failed_write_leaves_nothing(tmp_path, error):
    def half(path):
        path.write_bytes(b"half")
        raise error("stop")

    with pytest.raises((error, CliError)):
        commit(tmp_path / "a.mp4", half, {"seed": 1}, overwrite=False)
    assert files(tmp_path) == []


def test_an_output_that_appears_meanwhile_is_kept(tmp_path):
    def sneaky(path):
        (tmp_path / "a.mp4").write_bytes(b"someone else's")
        path.write_bytes(b"mine")

    with pytest.raises(CliError, match="appeared while generating"):
        commit(tmp_path / "a.mp4", sneaky, {}, overwrite=False)
    assert files(tmp_path) == ["a.mp4"] and (tmp_path / "a.mp4").read_bytes() == b"someone else's"
