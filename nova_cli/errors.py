"""The two kinds of failure a shell script sees: bad usage (exit 2) and failure at run time (exit 1)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager


class CliError(Exception):
    """A failure with a one-line message for stderr."""

    exit_code = 1


class UsageError(CliError):
    """The command line itself is wrong (unknown preset, invalid frame count, ...)."""

    exit_code = 2


class MediaError(CliError):
    """An input image or clip is missing, unreadable or unusable."""


class Interrupted(CliError):
    """Stopped by Ctrl-C after saving what was finished; the message says how to continue."""

    exit_code = 130


def internal_error(exc: BaseException, debug: bool) -> tuple[str, int]:
    """(one line, exit 1) for an exception nova did not anticipate: never a traceback unless ``--debug``.

    Library messages can span lines (ffmpeg's command, a state_dict report): only the first line is
    kept, cut to a readable length.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > 300:
        text = text[:299] + "…"
    hint = "" if debug else " (run again with --debug for the traceback)"
    return f"internal error: {type(exc).__name__}{': ' + text if text else ''}{hint}", 1


@contextmanager
def library_warnings(debug: bool):
    """Python warnings of the libraries (Pillow, torch, diffusers ...) stay off stderr unless ``--debug``.

    What matters in them is said in nova's own words where it happens (a huge image, a refused
    checkpoint file); the rest is noise for someone running a command.
    """
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore")
        yield
