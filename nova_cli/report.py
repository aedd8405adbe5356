"""What the user sees: messages and progress on stderr, results on stdout.

stdout carries one line per output: its path, or with ``--json`` its sidecar plus path as one JSON
object. stderr carries the plan line, notes and progress, unless ``--quiet``.
"""

from __future__ import annotations

import json


class Reporter:
    def __init__(self, *, json_lines: bool = False, quiet: bool = False):
        from rich.console import Console

        self.json_lines, self.quiet = json_lines, quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def plan(self, text: str) -> None:
        """The one line printed before heavy work."""
        if not self.quiet:
            self.console.print(f"[bold]{_escape(text)}[/bold]")

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(_escape(text))

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]warning:[/yellow] {_escape(text)}")

    def output(self, record: dict) -> None:
        """One finished output: its path, or its sidecar plus path as JSON."""
        if self.json_lines:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(record["path"], flush=True)

    def progress(self, stages=None, label: str = ""):
        from .progress import CliProgress, StageProgress

        if self.quiet:
            return StageProgress(stages)
        return CliProgress(self.console, stages, label)

    def print(self, renderable) -> None:
        if not self.quiet:
            self.console.print(renderable)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_result(renderable) -> None:
    """A table that is the command's result (presets, models) goes to stdout, like any result."""
    from rich.console import Console

    Console(highlight=False).print(renderable)
