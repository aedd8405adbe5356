"""nova batch: JSONL and prompt lists, resume, failures that do not stop the rest, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_cli.conftest import FAST, T2V, files, nova_process, read_mp4, sidecar, subprocess_env


def mtimes(folder) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in Path(folder).glob("*.*")}


def test_prompt_list_shares_the_options_and_resumes(nova, tmp_path):
    (tmp_path / "prompts.txt").write_text("# my prompts\na red fox\n\na blue whale\n")
    first = nova("batch", "prompts.txt", *T2V, "--frames", 5, "-o", "out")
    assert first.code == 0, first.err
    made = sorted(Path(p).name for p in first.out.split())
    assert made == ["a-blue-whale-s0.mp4", "a-red-fox-s0.mp4"]
    assert "2 done, 0 skipped" in first.err
    for name in made:
        assert len(read_mp4(tmp_path / "out" / name)[0]) == 5
        assert sidecar(tmp_path / "out" / name)["settings"]["frames"] == 5
    before = mtimes(tmp_path / "out")
    again = nova("batch", "prompts.txt", *T2V, "--frames", 5, "-o", "out", "--json")
    assert again.code == 0 and "0 done, 2 skipped" in again.err
    assert mtimes(tmp_path / "out") == before  # nothing redone
    records = again.records()
    assert all(r["skipped"] for r in records) and {r["prompt"] for r in records} == {"a red fox", "a blue whale"}


def test_jsonl_jobs_of_every_kind_and_failures_do_not_stop_the_rest(nova, tmp_path, media):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "start.png").write_bytes(media["image"].read_bytes())
    jobs = [
        {"command": "t2i", "prompt": "a lighthouse", "model": str(TINY_T2I), "num": 2, "seed": 5},
        {"prompt": "rain on a window", "frames": 5, "flow": 2, "out": "rain.mp4"},
        {"command": "i2v", "image": "in/start.png", "prompt": "the square slides", "frames": 5},
        {"command": "i2v", "image": "in/missing.png"},
        "{not json",
        {"prompt": "typo", "frame": 5},
        {"command": "i2v", "image": 42},
        {"command": "extend", "clip": str(media["clip"]), "frames": 5, "steps": 1, "seed": 9},
        {"prompt": "rain on a window", "frames": 5, "out": "rain.mp4"},
    ]
    text = "\n".join(j if isinstance(j, str) else json.dumps(j) for j in jobs)
    (tmp_path / "jobs.jsonl").write_text(text + "\n")
    result = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--json")
    assert result.code == 1
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*") if not p.name.endswith(".json")) == [
        "a-lighthouse-s5.png", "a-lighthouse-s6.png", "clip-ext-s9.mp4", "rain.mp4", "start-the-square-slides-s0.mp4"]
    assert len(result.records()) == 5
    assert "4 done, 0 skipped (already there), 5 failed" in result.err
    for message in ("in/missing.png: no such file", "not valid JSON", "unknown key 'frame'", "image must be text",
                    "writes rain.mp4, like line 2"):
        assert message in result.err
    assert sidecar(out / "rain.mp4")["settings"]["flow"] == 2.0
    assert len(read_mp4(out / "clip-ext-s9.mp4")[0]) == 15 + 4
    assert "Traceback" not in result.err
    before = mtimes(out)
    again = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--quiet")
    assert again.code == 1 and mtimes(out) == before
    assert len(again.out.split()) == 5 and again.err == ""


def test_batch_usage_errors(nova, tmp_path):
    (tmp_path / "p.txt").write_text("a fox\n")
    missing = nova("batch", "nope.txt", *T2V)
    assert missing.code == 1 and "nope.txt: no such file" in missing.err
    for args, message in ((["--command", "i2v"], "a plain prompt list needs --command t2i or t2v"),
                          (["--command", "draw"], "--command draw: one of t2i"),
                          (["-o", "one.mp4"], "batch writes many files: give a folder")):
        result = nova("batch", "p.txt", *T2V, *args)
        assert result.code == 2 and message in result.err and files(tmp_path) == ["p.txt"]


def test_interrupted_batch_resumes_where_it_stopped(nova, tmp_path):
    """Ctrl-C halfway through (a real SIGINT to a real process), then the same command again."""
    prompts = ["a fox", "a whale", "a frog", "an owl"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    args = ["batch", "prompts.txt", "--model", TINY_T2V, "--ar-steps", 4, "--diffusion-steps", 4, "--frames", 5,
            "-o", "out"]
    process = nova_process(args, tmp_path)
    first = tmp_path / "out" / "a-fox-s0.mp4"
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "nova: error: interrupted" in err and "Traceback" not in err
    done = [p for p in files(tmp_path / "out")]
    assert all(not name.startswith(".") for name in done)  # no temporary file left
    finished = [name for name in done if name.endswith(".mp4")]
    assert 1 <= len(finished) < len(prompts)
    assert sorted(done) == sorted(finished + [n + ".json" for n in finished])  # each with its sidecar
    before = mtimes(tmp_path / "out")

    again = nova(*args)
    assert again.code == 0, again.err
    assert f"{len(prompts) - len(finished)} done, {len(finished)} skipped" in again.err
    after = mtimes(tmp_path / "out")
    assert {name: after[name] for name in before} == before  # what was finished is not redone
    assert len([n for n in after if n.endswith(".mp4")]) == len(prompts)


def test_torchrun_splits_the_jobs_across_ranks_each_once(tmp_path):
    prompts = ["a fox", "a whale", "a frog"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "nova_cli", "batch", "prompts.txt", "--model", str(TINY_T2V), *FAST, "--frames", "5",
               "-o", "out", "--json"]
    process = subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:  # never leave the workers of a hung run behind
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sorted(r["prompt"] for r in records) == sorted(prompts)  # every job exactly once
    assert err.count("nova batch: 3 done") == 1  # rank 0 alone prints the summary
    assert "across 2 ranks" in err
    assert "rank 0: job 1/2" in err and "rank 1: job 1/1" in err
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 3
