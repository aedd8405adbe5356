"""The Typer app: global options, command registration, and the one place errors become exit codes.

Command modules stay thin and import torch/diffusers lazily, so ``nova --help`` is instant. Each
module in ``COMMAND_MODULES`` has ``register(app)``.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from importlib import import_module

import typer

from .errors import CliError, internal_error, library_warnings

COMMAND_MODULES: tuple[str, ...] = (
    "commands.generate", "commands.batch", "commands.presets", "commands.hub", "commands.flow",
    "bench", "prepare", "train",
)

app = typer.Typer(
    name="nova",
    help="NOVA: text-to-image, text-to-video, image-to-video and video extension from the shell.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool):
    if value:
        from nova_core import __version__

        typer.echo(f"nova {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of an error (also after the "
                               "command: nova t2v ... --debug)."),
):
    """NOVA from the shell. Exit codes: 0 success, 1 failure at run time, 2 bad usage, 130 interrupted."""
    ctx.obj = {"debug": debug or os.environ.get("NOVA_DEBUG") == "1"}


_registered = False


def _register_commands() -> None:
    global _registered
    if not _registered:
        for name in COMMAND_MODULES:
            import_module(f"{__package__}.{name}").register(app)
        for info in app.registered_commands:
            if info.help is None and info.callback is not None and info.callback.__doc__:
                info.help = unwrap(inspect.getdoc(info.callback))
        _registered = True


def unwrap(doc: str) -> str:
    """Docstring paragraphs as single lines, so the help reflows to the terminal instead of keeping
    the source's line breaks (lines starting with "-" or "*" stay list items)."""
    paragraphs = []
    for block in doc.strip().split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        joined: list[str] = []
        for line in lines:
            if joined and not line.startswith(("-", "*")):
                joined[-1] += " " + line
            else:
                joined.append(line)
        paragraphs.append("\n".join(joined))
    return "\n\n".join(paragraphs)


def _fail(message: str, code: int) -> int:
    print(f"nova: error: {message}", file=sys.stderr)
    return code


def exit_code_for(exc: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for the errors we expect; None for bugs."""
    from nova_core.errors import InputError, NovaError  # light: no torch import

    if isinstance(exc, CliError):
        return str(exc), exc.exit_code
    if isinstance(exc, InputError):
        return str(exc), 2
    if isinstance(exc, NovaError):
        return str(exc), 1
    return None


def _click_errors() -> tuple[type, type, type]:
    """(Exit, Abort, ClickException) of the click that Typer runs on: Typer >= 0.2x vendors click
    as ``typer._click``, older ones use ``click``; both expose the classes through Typer."""
    import typer

    base = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return typer.Exit, typer.Abort, base


def hoist_debug(argv: list[str]) -> list[str]:
    """``nova t2v ... --debug`` means ``nova --debug t2v ...`` (a global option, wherever it is given;
    an argument after ``--`` is left alone)."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" not in argv[:end]:
        return argv
    return ["--debug", *[a for a in argv[:end] if a != "--debug"], *argv[end:]]


COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def show_completion(shell: str) -> int:
    """The script for the shell named, even where Typer's detection finds no shell (scripts, CI,
    a session without a terminal), which would otherwise ignore the name and print "not supported"."""
    from typer.completion import get_completion_script

    print(get_completion_script(prog_name="nova", complete_var="_NOVA_COMPLETE", shell=shell))
    return 0


def run(argv: list[str] | None = None) -> int:
    """Run the app and return its exit code (what ``main`` exits with; tests call this)."""
    exit_error, abort, click_error = _click_errors()
    argv = hoist_debug(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in argv or os.environ.get("NOVA_DEBUG") == "1"
    if len(argv) == 2 and argv[0] == "--show-completion" and argv[1] in COMPLETION_SHELLS:
        return show_completion(argv[1])
    _register_commands()
    try:
        # Without standalone mode, Typer returns the code of typer.Exit and turns Ctrl-C into 130.
        with library_warnings(debug):
            code = app(args=argv, prog_name="nova", standalone_mode=False)
        code = code if isinstance(code, int) else 0
        return _fail("interrupted", 130) if code == 130 else code
    except exit_error as exc:
        return exc.exit_code
    except click_error as exc:  # usage errors from click/typer: exit 2
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, abort):
        return _fail("interrupted", 130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        return _fail(*(exit_code_for(exc) or internal_error(exc, debug)))


def main() -> None:
    code = run()
    from . import distributed

    if distributed.under_torchrun():
        distributed.leave(code)
    sys.exit(code)
