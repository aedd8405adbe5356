"""The two kinds of failure a shell script sees: bad usage (exit 2) and failure at run time (exit 1)."""

from __future__ import annotations


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
