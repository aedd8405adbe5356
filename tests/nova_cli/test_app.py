"""The app itself: help through Typer's CliRunner, version, lazy imports, shell completion."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from nova_cli.app import _register_commands, app
from tests.nova_cli.conftest import subprocess_env

COMMANDS = ("t2i", "t2v", "i2v", "extend", "batch", "presets", "download", "models", "flow")


def test_every_command_has_help_through_clirunner():
    _register_commands()
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in COMMANDS:
        assert command in top.stdout
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage: nova " + command in result.stdout
    shared = runner.invoke(app, ["i2v", "--help"]).stdout
    for option in ("--model", "--preset", "--seed", "--negative-prompt", "--guidance", "--ar-steps",
                   "--diffusion-steps", "--out", "--device", "--dtype", "--json", "--quiet", "--overwrite",
                   "--frames", "--flow", "--prompt"):
        assert option in shared


def test_version(nova):
    result = nova("--version")
    assert result.code == 0 and result.out.strip() == "nova 0.1.0"


def test_help_imports_no_heavy_library():
    """`nova --help` stays instant: torch, diffusers, OpenCV, numpy load only when a command runs."""
    code = ("import sys; from nova_cli.app import run\n"
            "for argv in (['--help'], ['t2v', '--help'], ['batch', '--help'], ['--version']): run(argv)\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'cv2', 'numpy') if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "[]", done.stderr


def test_shell_completion_knows_commands_and_presets():
    def complete(words, index):
        env = subprocess_env(_NOVA_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(index))
        return subprocess.run([sys.executable, "-m", "nova_cli"], env=env, capture_output=True, text=True).stdout.split()

    assert complete("nova t2", 1) == ["t2i", "t2v"]
    assert complete("nova t2v x --preset lo", 4) == ["low-memory"]
    script = subprocess.run([sys.executable, "-m", "nova_cli", "--show-completion", "bash"], env=subprocess_env(),
                            capture_output=True, text=True).stdout
    assert "_nova_completion" in script
