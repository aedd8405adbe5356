"""CLI test helpers: run ``nova`` in-process or as a subprocess, small media files, fast settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, TINY_T2I, TINY_T2V

# Small step counts: every command runs end to end in about a second on 2 cores.
FAST = ["--ar-steps", "2", "--diffusion-steps", "2"]
T2V = ["--model", str(TINY_T2V), *FAST]
T2I = ["--model", str(TINY_T2I), *FAST]


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def own_config(tmp_path_factory, monkeypatch):
    """No user presets from this machine leak in; the HF cache is an empty folder."""
    monkeypatch.setenv("NOVA_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def nova(capsys, monkeypatch, tmp_path):
    """``nova(*args)`` in a fresh folder, through ``nova_cli.app.run``: exit code, stdout, stderr."""
    from nova_cli.app import run

    monkeypatch.chdir(tmp_path)

    def call(*args) -> Outcome:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return call


def subprocess_env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", _TYPER_FORCE_DISABLE_TERMINAL="1",
               **extra)
    env.pop("FORCE_COLOR", None)
    return env


def nova_process(args, cwd, **popen) -> subprocess.Popen:
    """``python -m nova_cli ARGS`` as a child process running this checkout's code."""
    return subprocess.Popen([sys.executable, "-m", "nova_cli", *map(str, args)], cwd=cwd, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def moving_frames(count=30, height=120, width=200) -> np.ndarray:
    """A smooth gradient with a white square moving right 4 px per frame: real, trackable motion."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        frame = np.stack([xx * 255 / width, yy * 255 / height, np.full(xx.shape, 128)], -1).astype(np.uint8)
        frame[40:70, 10 + 4 * t : 40 + 4 * t] = 255
        frames.append(frame)
    return np.stack(frames)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """clip.mp4 (30 frames 200x120 at 24 fps), image.png (its first frame), short.mp4, notes.txt."""
    from PIL import Image

    from nova_cli.writing import write_mp4

    folder = tmp_path_factory.mktemp("media")
    frames = moving_frames()
    write_mp4(folder / "clip.mp4", frames, 24)
    write_mp4(folder / "short.mp4", frames[:6], 24)  # 3 frames at 12 fps
    Image.fromarray(frames[0]).save(folder / "image.png")
    (folder / "notes.txt").write_text("not an image or a video\n")
    return {"clip": folder / "clip.mp4", "image": folder / "image.png", "short": folder / "short.mp4",
            "text": folder / "notes.txt", "frames": frames}


def read_mp4(path) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(frames, fps, (width, height)) as a player would see them."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
    return frames, meta["fps"], (width, height)


def sidecar(path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())


def files(folder) -> list[str]:
    """Every file below ``folder`` (hidden temporaries included), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())
