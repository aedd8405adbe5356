"""Progress bars on a terminal, stage borders for timings and out-of-memory messages."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from nova_cli.progress import CliProgress, StageLog, StageProgress, Stages
from tests.nova_cli.conftest import T2V


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


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_steps_bar_shows_the_frames_own_time():
    clock = Clock()
    progress = CliProgress(Console(file=io.StringIO(), force_terminal=True, width=100), Stages(clock=clock),
                           clock=clock)
    progress.start(3, 0, 2)
    clock.now = 10.0
    progress.step(0, 2, 2)
    progress.frame(1)  # frame 0 took 10 s
    clock.now = 12.5
    progress.step(1, 1, 2)
    steps = progress._bars.tasks[-1]
    assert steps.elapsed == 2.5 and steps.completed == 1 and "frame 1 sets" in steps.description
    progress.close()


def test_a_line_per_finished_stage_with_its_parts():
    screen, clock = io.StringIO(), Clock()
    stages = Stages(StageLog(Console(file=screen, force_terminal=False, width=200)), clock=clock)
    stages.enter("load")
    for name, seconds in (("transformer", 1.5), ("vae", 0.25)):
        with stages.part(name):
            clock.now += seconds
    stages.enter("prepare")
    clock.now += 0.5
    progress = StageProgress(stages)
    progress.start(4, 1, 8)
    clock.now += 3.0
    progress.close()
    clock.now += 1.0
    stages.stop()
    lines = screen.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["load", "prepare", "sample", "decode"]
    assert "1.75 s" in lines[0] and "transformer 1.50 s · vae 0.25 s" in lines[0]
    assert "3.00 s" in lines[2] and "3 latent frames x 8 set-by-set steps" in lines[2]
    assert stages.seconds == {"load": 1.75, "prepare": 0.5, "sample": 3.0, "decode": 1.0}


def test_a_reused_pipeline_prints_no_load_line_and_labels_prefix_lines():
    screen = io.StringIO()
    stages = Stages(StageLog(Console(file=screen, force_terminal=False)))
    stages.enter("load")
    stages.stop()
    stages.label = "round 2/3"
    stages.enter("encode")
    stages.stop()
    assert screen.getvalue().splitlines() == [screen.getvalue().strip()]
    assert screen.getvalue().startswith("round 2/3 encode ")


def test_a_spinner_names_the_running_stage_on_a_terminal():
    screen = io.StringIO()
    stages = Stages(StageLog(Console(file=screen, force_terminal=True, width=100)))
    with pytest.raises(RuntimeError), stages.shown():
        stages.enter("load")
        with stages.part("text_encoder"):
            pass
        stages.enter("decode")
        raise RuntimeError("out of memory")
    assert "loading the model" in screen.getvalue() and "decoding with the VAE" in screen.getvalue()
    assert stages.current == "decode" and stages.view._status is None  # spinner gone, stage kept


def test_every_stage_and_a_closing_line_end_to_end(nova, tmp_path):
    out = tmp_path / "v.mp4"
    result = nova("t2v", "a red ball", *T2V, "--frames", "5", "--seed", "1", "-o", out)
    code, stdout, stderr = result.code, result.out, result.err
    assert code == 0 and stdout == f"{out}\n"
    stage_lines = [line.split()[0] for line in stderr.splitlines()[1:]]
    assert stage_lines == ["load", "prepare", "sample", "decode", "write", "done"]
    assert "transformer" in stderr and "text encoder" in stderr
    assert re.search(rf"^done in \d+\.\d s: {re.escape(str(out))}$", stderr, re.M)


def test_json_and_quiet_keep_their_contract(nova, tmp_path):
    result = nova("t2v", "a red ball", *T2V, "--frames", "5", "--seed", "1", "-o", tmp_path / "j.mp4", "--json")
    assert result.code == 0 and [r["path"] for r in result.records()] == [str(tmp_path / "j.mp4")]
    assert "done in" in result.err
    result = nova("t2v", "a red ball", *T2V, "--frames", "5", "--seed", "1", "-o", tmp_path / "q.mp4", "--quiet")
    assert result.code == 0 and result.out == f"{tmp_path / 'q.mp4'}\n" and result.err == ""


def test_the_load_line_accounts_for_its_time_in_a_fresh_process(tmp_path):
    # Most of a small model's load is importing torch's and diffusers' machinery: the line shows it
    # as "libraries" instead of leaving seconds that no part explains.
    from tests.nova_cli.conftest import nova_process

    process = nova_process(["t2v", "a red ball", *T2V, "--frames", "5", "-o", tmp_path / "v.mp4"], tmp_path)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    line = next(line for line in err.splitlines() if line.startswith("load"))
    total = float(line.split()[1])
    parts = dict((name, float(value)) for name, value in re.findall(r"(\w[\w ]*?) (\d+\.\d+) s", line.split(" s  ", 1)[1]))
    assert list(parts)[0] == "libraries" and parts["libraries"] > 0
    assert sum(parts.values()) >= 0.9 * total - 0.05, line
