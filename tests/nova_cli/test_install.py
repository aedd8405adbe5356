"""After a plain (non-editable) `pip install`, `nova presets` still finds the bundled presets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv

from tests.conftest import REPO


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
    venv.create(env_dir, system_site_packages=True, with_pip=False)  # typer, rich... from this machine
    python = env_dir / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "--no-deps", wheel], check=True, capture_output=True)
    done = subprocess.run([python, "-m", "nova_cli", "presets", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, env={"NOVA_CONFIG_DIR": str(tmp_path / "config"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    presets = json.loads(done.stdout)
    assert set(presets) == {"video", "image", "fast", "quality", "low-memory"}
    assert all(p["path"].startswith(str(env_dir / "share" / "nova" / "presets")) for p in presets.values())
