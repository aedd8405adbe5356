"""After a plain (non-editable) `pip install`, `nova presets` finds the bundled presets and
`--model demo` the bundled checkpoint."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO


def _borrow_dependencies(python) -> None:
    """Let the new venv import typer, torch... from the environment running the tests (the one
    the README's install made), after its own site-packages, so the installed wheel is the nova
    it runs. A ``.pth`` line only adds the folder: the editable nova install there (its own
    ``.pth`` and finder) is not activated."""
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True,
                         capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()])
    (Path(own) / "_nova_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours if p != own))


@pytest.mark.slow
def test_wheel_ships_the_presets_and_the_installed_cli_finds_them(tmp_path):
    source = tmp_path / "src"  # build from a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("nova_core", "nova_cli", "presets"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source], check=True,
                   capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # its base Python may have none of the dependencies
    python = env_dir / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "--no-deps", wheel], check=True, capture_output=True)
    _borrow_dependencies(python)
    where = subprocess.run([python, "-c", "import nova_cli, typer; print(nova_cli.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert where.returncode == 0 and where.stdout.startswith(str(env_dir)), where.stderr  # the wheel, not the checkout
    done = subprocess.run([python, "-m", "nova_cli", "presets", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, env={"NOVA_CONFIG_DIR": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    presets = {p["name"]: p for p in map(json.loads, done.stdout.splitlines())}  # JSON Lines, one a preset
    assert set(presets) == {"video", "image", "fast", "quality", "low-memory", "demo"}
    assert all(p["path"].startswith(str(env_dir / "share" / "nova" / "presets")) for p in presets.values())
    # the demo checkpoint is package data: the installed nova draws with it, offline
    assert wheel.stat().st_size <= 25 * 2**20
    env = {"NOVA_CONFIG_DIR": str(tmp_path / "config"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    found = subprocess.run([python, "-c", "from nova_core import demo; print(demo.checkpoint())"], cwd=tmp_path,
                           capture_output=True, text=True, env=env)
    assert found.returncode == 0 and found.stdout.startswith(str(env_dir)), found.stderr
    image = tmp_path / "demo.png"
    done = subprocess.run([python, "-m", "nova_cli", "t2i", "a red circle moving right on a black background",
                           "--model", "demo", "--seed", "0", "-o", image, "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0 and image.is_file(), done.stderr
