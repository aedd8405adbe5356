"""What a training run shows while it runs: loss, learning rate and throughput.

On a terminal a Rich progress bar is redrawn every step; elsewhere (a log file, CI) one plain
line is printed per logged step. Only the main process shows anything.
"""

from __future__ import annotations

import sys


def describe(metrics: dict) -> str:
    parts = [f"loss {metrics['loss']:.4f}"]
    if "loss_i2i" in metrics:
        parts.append(f"(t2i {metrics['loss_t2i']:.4f}, i2i {metrics['loss_i2i']:.4f})")
    parts += [f"lr {metrics['lr']:.2e}", f"{metrics['samples_per_s']:.2f} samples/s"]
    return "  ".join(parts)


class NullDisplay:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, step: int) -> None:
        pass

    def log(self, metrics: dict) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainDisplay(NullDisplay):
    """One line per logged step on stderr."""

    def __init__(self, stream=None):
        self.stream, self.total = stream or sys.stderr, 0

    def start(self, total, done):
        self.total = total

    def log(self, metrics):
        print(f"step {metrics['step']}/{self.total}  {describe(metrics)}", file=self.stream, flush=True)

    def message(self, text):
        print(text, file=self.stream, flush=True)


class RichDisplay(NullDisplay):
    """A live bar (steps, elapsed, remaining) with the latest logged metrics on the line below."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.progress import TimeRemainingColumn
        from rich.text import Text

        class Bars(Progress):
            metrics = ""

            def get_renderables(self):
                yield self.make_tasks_table(self.tasks)
                if self.metrics:
                    yield Text(self.metrics)

        self._bars = Bars(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TimeRemainingColumn(), console=console or Console(stderr=True, soft_wrap=True))
        self._task = None

    def start(self, total, done):
        self._bars.start()
        self._task = self._bars.add_task("train", total=total, completed=done)

    def advance(self, step):
        self._bars.update(self._task, completed=step)

    def log(self, metrics):
        self._bars.metrics = f"step {metrics['step']}  {describe(metrics)}"
        self._bars.update(self._task, completed=metrics["step"])

    def message(self, text):
        self._bars.console.print(text, markup=False, highlight=False)

    def close(self):
        self._bars.stop()


def default_display(is_main: bool):
    if not is_main:
        return NullDisplay()
    return RichDisplay() if sys.stderr.isatty() else PlainDisplay()
