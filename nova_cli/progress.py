"""Stage timing and the Rich progress bars the sampling loop drives (frames, set-by-set steps).

``Stages`` records wall time per stage (load, prepare, sample, decode, encode, write) for the
sidecar, and knows which stage is running, so an out-of-memory error can name it.
"""

from __future__ import annotations

import time

from nova_core.progress import NullProgress


class Stages:
    """Seconds spent per stage; ``current`` is the stage running now (None between stages)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.current: str | None = None
        self._started = 0.0

    def enter(self, name: str) -> None:
        self.stop()
        self.current, self._started = name, time.perf_counter()

    def stop(self) -> None:
        if self.current is not None:
            elapsed = time.perf_counter() - self._started
            self.seconds[self.current] = round(self.seconds.get(self.current, 0.0) + elapsed, 3)
            self.current = None

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 2) for name, value in self.seconds.items()}


class StageProgress(NullProgress):
    """Shows nothing; marks where sampling begins (after text/image encoding) and ends (the decode follows)."""

    def __init__(self, stages: Stages | None = None):
        self.stages = stages

    def start(self, num_frames, num_known, steps_per_frame):
        if self.stages is not None:
            self.stages.enter("sample")

    def close(self):
        if self.stages is not None and self.stages.current == "sample":
            self.stages.enter("decode")
        self.stop_display()

    def stop_display(self) -> None:
        """Clean up what is on screen (also when sampling fails: the stage stays for the error)."""


class CliProgress(StageProgress):
    """Two bars on stderr: latent frames (videos) and the set-by-set steps of the current frame."""

    def __init__(self, console, stages: Stages | None = None, label: str = ""):
        super().__init__(stages)
        self.console, self.label = console, label
        self._bars = self._frames = self._steps = None

    def start(self, num_frames, num_known, steps_per_frame):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        super().start(num_frames, num_known, steps_per_frame)
        if not self.console.is_terminal:  # logs and pipes get the plan line and results only
            return
        self._bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=self.console, transient=True,
        )
        self._bars.start()
        prefix = f"{self.label} " if self.label else ""
        if num_frames > 1:
            self._frames = self._bars.add_task(f"{prefix}latent frames", total=num_frames, completed=num_known)
        self._steps = self._bars.add_task(f"{prefix}set-by-set", total=steps_per_frame)

    def step(self, frame, step, num_steps):
        if self._bars is not None:
            self._bars.update(self._steps, completed=step, description=f"frame {frame} sets")

    def frame(self, done):
        if self._bars is not None and self._frames is not None:
            self._bars.update(self._frames, completed=done)

    def stop_display(self):
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
