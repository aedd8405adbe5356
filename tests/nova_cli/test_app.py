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
    for shell, marker in (("bash", "_nova_completion"), ("zsh", "#compdef nova"), ("fish", "complete --command nova")):
        # no terminal and a new session: Typer could not detect a shell, the name given is used
        script = subprocess.run([sys.executable, "-m", "nova_cli", "--show-completion", shell], env=subprocess_env(),
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, start_new_session=True).stdout
        assert marker in script, (shell, script[:200])


def every_command():
    import typer

    _register_commands()
    group = typer.main.get_command(app)
    return group, group.commands


def test_every_option_of_every_command_has_one_line_of_help():
    group, commands = every_command()
    assert set(COMMANDS) | {"bench", "prepare", "train"} <= set(commands)
    missing = [f"{name} {param.name}" for name, command in [("nova", group), *commands.items()]
               for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert missing == []


def test_help_fits_80_columns_without_cutting_an_option(nova, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _, commands = every_command()
    for name, command in commands.items():
        text = nova(name, "--help").out
        assert "…" not in text, name
        assert max(map(len, text.splitlines())) <= 80, name
        for param in command.params:
            for option in (*param.opts, *param.secondary_opts):
                if option.startswith("--"):
                    assert option in text, (name, option)


def test_docstrings_reflow_instead_of_keeping_source_line_breaks(nova):
    text = nova("extend", "--help").out  # COLUMNS=200: each paragraph is one line
    assert "context + new, default 33); the last frames of the clip pre-fill the KV cache." in text


def test_generation_help_shows_the_effective_defaults_and_their_preset(nova):
    t2v = nova("t2v", "--help").out
    for text in ("[default: 33 (preset video)]", "[default: 64 (preset video)]", "[default: 5 (preset video)]",
                 "[default: BAAI/nova-d48w1024-osp480 (preset video)]", "[default: auto]", "[default: off]",
                 "[default: none on top of video]"):
        assert text in t2v, text
    t2i = nova("t2i", "--help").out
    assert "[default: BAAI/nova-d48w1024-sdxl1024 (preset image)]" in t2i and "[default: 1]" in t2i
    flow = next(line for line in nova("extend", "--help").out.splitlines() if line.strip("│ ").startswith("--flow"))
    assert "or 'auto'" in flow and "[default: auto]" in flow


def test_help_defaults_follow_a_user_preset_that_replaces_the_bundled_one(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "video.toml").write_text('model = "x/y"\nframes = 17\nar_steps = 8\n')
    env = subprocess_env(NOVA_CONFIG_DIR=str(tmp_path), COLUMNS="200")
    text = subprocess.run([sys.executable, "-m", "nova_cli", "t2v", "--help"], env=env, capture_output=True,
                          text=True).stdout
    assert "[default: 17 (preset video)]" in text and "[default: 8 (preset video)]" in text
    assert "[default: 25]" in text  # diffusion steps: not in that preset, the built-in fallback


def test_debug_works_after_the_command_too(nova, tmp_path):
    from nova_cli.app import hoist_debug

    assert hoist_debug(["t2v", "x", "--debug"]) == ["--debug", "t2v", "x"]
    assert hoist_debug(["t2v", "--", "--debug"]) == ["t2v", "--", "--debug"]
    result = nova("t2v", "x", "--model", tmp_path / "nowhere", "--debug")
    assert result.code == 1 and "Traceback" in result.err and "no such checkpoint folder" in result.err
    plain = nova("t2v", "x", "--model", tmp_path / "nowhere")
    assert plain.code == 1 and "Traceback" not in plain.err


def test_generation_help_names_the_demo_model(nova):
    t2v = nova("t2v", "--help").out  # COLUMNS=200
    assert 'nova t2v "a red circle moving right on a black background" --model demo' in t2v
    for command in ("t2i", "i2v", "extend"):
        assert "`demo` (bundled, offline, CPU)" in nova(command, "--help").out, command
