"""Progress bars on a terminal, stage borders for timings and out-of-memory messages."""

from __future__ import annotations

import io

from rich.console import Console

from nova_cli.progress import CliProgress, StageProgress, Stages


def drive(progress, frames=3, known=1, steps=2):
    progress.start(frames, known, steps)
    for t in range(known, frames):
        for step in range(1, steps + 1):
            progress.step(t, step, steps)
        progress.frame(t + 1)
    progress.close()


def test_bars_over_frames_and_sets_on_a_terminal():
    screen = io.StringIO()
    stages = Stages()
    stages.enter("prepare")
    drive(CliProgress(Console(file=screen, force_terminal=True, width=100), stages, "round 1/2"))
    text = screen.getvalue()
    assert "round 1/2 latent frames" in text and "frame 2 sets" in text and "3/3" in text
    assert stages.current == "decode" and set(stages.seconds) == {"prepare", "sample"}


def test_nothing_drawn_when_not_a_terminal():
    screen = io.StringIO()
    drive(CliProgress(Console(file=screen, force_terminal=False), Stages()))
    assert screen.getvalue() == ""


def test_a_failure_while_sampling_keeps_the_stage():
    stages = Stages()
    progress = StageProgress(stages)
    progress.start(2, 0, 2)
    progress.stop_display()  # what the caller does when the pipeline raised
    assert stages.current == "sample"
