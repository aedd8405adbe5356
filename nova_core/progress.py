"""Progress reporting for the sampling loop: frames outer, set-by-set steps inner.

The loop calls a small interface; the pipeline picks a Rich display by default, the CLI can pass
its own, and tests pass nothing.
"""

from __future__ import annotations


class NullProgress:
    """Reports nothing. Subclass and override what you need."""

    def start(self, num_frames: int, num_known: int, steps_per_frame: int) -> None:
        pass

    def step(self, frame: int, step: int, num_steps: int) -> None:
        pass

    def frame(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress(NullProgress):
    """Two Rich bars: latent frames, and the set-by-set steps of the current frame."""

    def __init__(self, console=None, transient: bool = True):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=transient,
        )
        self._frames = self._steps = None

    def start(self, num_frames, num_known, steps_per_frame):
        self._bars.start()
        if num_frames > 1:
            self._frames = self._bars.add_task("frames", total=num_frames, completed=0)
        self._steps = self._bars.add_task("set-by-set", total=steps_per_frame)

    def step(self, frame, step, num_steps):
        self._bars.update(self._steps, completed=step, description=f"frame {frame} sets")

    def frame(self, done):
        if self._frames is not None:
            self._bars.update(self._frames, completed=done)
        self._bars.reset(self._steps)  # the next frame's bar shows its own elapsed time

    def close(self):
        self._bars.stop()
