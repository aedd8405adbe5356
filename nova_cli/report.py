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

    def stages(self):
        """A job's stage timer; unless ``--quiet``, each stage gets a line on stderr."""
        from .progress import StageLog, Stages

        return Stages(None if self.quiet else StageLog(self.console))

    def progress(self, stages=None, label: str = ""):
        """The sampling bars of one output or round (``label``), which its stage lines carry too."""
        from .progress import CliProgress, StageProgress

        if stages is not None:
            stages.label = label
        if self.quiet:
            return StageProgress(stages)
        return CliProgress(self.console, stages, label)

    def done(self, seconds: float, paths: list[str]) -> None:
        """The closing line of a job: how long it took, and what it made."""
        if not self.quiet and paths:
            more = f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""
            self.console.print(f"done in {seconds:.1f} s: {_escape(paths[0])}{more}")

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
