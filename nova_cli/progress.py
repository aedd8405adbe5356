"""Stages of a job (load, prepare, encode, sample, decode, write), their times, and what is shown.

``Stages`` records wall time per stage for the sidecar and knows which stage is running, so an
out-of-memory error can name it; ``Stages.part`` times a piece of a stage (each component while the
model loads). A ``StageLog`` prints one line per finished stage on stderr and, on a terminal, a
spinner naming the running one; ``CliProgress`` draws the bars of the sampling stage.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from nova_core.progress import NullProgress

from .runtime import STAGE_WORDS


class Stages:
    """Seconds spent per stage; ``current`` is the stage running now (None between stages).

    ``view`` (a :class:`StageLog`) is told when a stage begins, reaches a part, and ends; ``label``
    ("image 2/4", "round 1/3") is the output or round the stages belong to.
    """

    def __init__(self, view=None, clock=time.perf_counter):
        self.seconds: dict[str, float] = {}
        self.current: str | None = None
        self.label = ""
        self.view, self.clock = view, clock
        self._started, self._detail, self._parts = 0.0, "", {}

    def enter(self, name: str, detail: str = "") -> None:
        self.stop()
        self.current, self._started, self._detail, self._parts = name, self.clock(), detail, {}
        if self.view is not None:
            self.view.begin(name, self.label)

    @contextmanager
    def part(self, name: str):
        """Time one piece of the current stage (the pipeline's loader calls this per component)."""
        if self.view is not None:
            self.view.part(self.current, name, self.label)
        started = self.clock()
        yield
        self._parts[name] = self._parts.get(name, 0.0) + self.clock() - started

    def stop(self) -> None:
        if self.current is not None:
            name, elapsed = self.current, self.clock() - self._started
            self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 3)
            self.current = None
            if self.view is not None:
                self.view.end(name, elapsed, self._parts, self._detail, self.label)

    @contextmanager
    def shown(self):
        """Clear the running stage's spinner however the job ends (the stage stays for an error)."""
        try:
            yield
        finally:
            if self.view is not None:
                self.view.close()

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 2) for name, value in self.seconds.items()}


class StageLog:
    """One line per finished stage on stderr; on a terminal, a spinner while a stage runs.

    Sampling has its own bars (:class:`CliProgress`), so no spinner is shown for it. A load that
    loaded nothing (a batch reusing the pipeline) prints no line.
    """

    def __init__(self, console):
        self.console = console
        self._status = None

    def begin(self, stage: str, label: str) -> None:
        if stage != "sample" and self.console.is_terminal:
            self._status = self.console.status(self._words(stage, label))
            self._status.start()

    def part(self, stage: str | None, part: str, label: str) -> None:
        if self._status is not None:
            self._status.update(f"{self._words(stage, label)}: {part.replace('_', ' ')}")

    def end(self, stage: str, seconds: float, parts: dict, detail: str, label: str) -> None:
        self.close()
        if stage == "load" and not parts:
            return
        pieces = " · ".join(f"{name.replace('_', ' ')} {value:.2f} s" for name, value in parts.items())
        extra = "  ".join(text for text in (pieces, detail) if text)
        prefix = f"{label} " if label else ""
        self.console.print(f"{prefix}{stage:<7} {seconds:7.2f} s  {extra}".rstrip(), highlight=False,
                           markup=False)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @staticmethod
    def _words(stage: str | None, label: str) -> str:
        words = STAGE_WORDS.get(stage or "", stage or "")
        return f"{label}: {words}" if label else words


class StageProgress(NullProgress):
    """Shows nothing; marks where sampling begins (after text/image encoding) and ends (the decode follows)."""

    def __init__(self, stages: Stages | None = None):
        self.stages = stages

    def start(self, num_frames, num_known, steps_per_frame):
        if self.stages is not None:
            new = num_frames - num_known
            what = f"{new} latent frame{'s' if new != 1 else ''}" if num_frames > 1 else "1 image"
            self.stages.enter("sample", f"{what} x {steps_per_frame} set-by-set steps")

    def close(self):
        self.stop_display()
        if self.stages is not None and self.stages.current == "sample":
            self.stages.enter("decode")

    def stop_display(self) -> None:
        """Clean up what is on screen (also when sampling fails: the stage stays for the error)."""


class CliProgress(StageProgress):
    """Two bars on stderr: latent frames (videos) and the set-by-set steps of the current frame.

    The steps bar restarts at every frame, so its elapsed time is that frame's own.
    """

    def __init__(self, console, stages: Stages | None = None, label: str = "", clock=None):
        super().__init__(stages)
        self.console, self.label, self.clock = console, label, clock
        self._bars = self._frames = self._steps = None

    def start(self, num_frames, num_known, steps_per_frame):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        super().start(num_frames, num_known, steps_per_frame)
        if not self.console.is_terminal:  # logs and pipes get the stage lines only
            return
        clock = {"get_time": self.clock} if self.clock is not None else {}
        self._bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=self.console, transient=True, **clock,
        )
        self._bars.start()
        if num_frames > 1:
            self._frames = self._bars.add_task(f"{self._prefix}latent frames", total=num_frames,
                                               completed=num_known)
        self._steps = self._bars.add_task(f"{self._prefix}set-by-set", total=steps_per_frame)

    @property
    def _prefix(self) -> str:
        return f"{self.label} " if self.label else ""

    def step(self, frame, step, num_steps):
        if self._bars is None:
            return
        self._bars.update(self._steps, completed=step, description=f"{self._prefix}frame {frame} sets")

    def frame(self, done):
        if self._bars is None:
            return
        if self._frames is not None:
            self._bars.update(self._frames, completed=done)
        self._bars.reset(self._steps)  # the next frame starts: its own bar and elapsed time

    def stop_display(self):
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
