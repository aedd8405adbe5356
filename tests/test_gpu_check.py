"""``.ci/gpu-check``: its no-GPU mode (what CI runs, so the GPU check cannot rot), its step runner
(limits, failures and the deadline recorded, never fatal) and its tables."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("gpu_check", REPO / ".ci" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the whole check")
def test_without_a_gpu_it_checks_its_inputs_says_so_in_one_line_and_exits_0(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    result = subprocess.run(["bash", str(REPO / ".ci" / "gpu-check"), str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA GPU here") and "inputs in place" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing run, nothing written


def test_missing_inputs_are_problems_and_missing_wheels_a_note(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check, "reference_folder", lambda: None)
    monkeypatch.setattr(gpu_check, "CUDA_TESTS", ["tests/nova_core/test_no_such_file.py"])
    monkeypatch.setattr(gpu_check, "WHEELS", tmp_path)  # an empty wheel folder
    monkeypatch.setattr(gpu_check, "check_commands", lambda: [])
    problems, notes = gpu_check.check_inputs()
    assert any("test_no_such_file.py is missing" in p for p in problems)
    assert any("reference data" in p for p in problems)
    assert len(notes) == 1 and "--fetch-wheels would fetch" in notes[0]
    for dist, version in gpu_check.WHEEL_PINS.items():
        assert f"{dist}=={version}" in notes[0]


def test_steps_record_failures_timeouts_and_the_deadline_and_go_on(tmp_path):
    steps = gpu_check.Steps(tmp_path, deadline_s=60)
    env = gpu_check.step_env()
    assert steps.run("fails", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], 30, env)["status"] == "failed"
    hang = steps.run("hangs", ["bash", "-c", "sleep 300 & sleep 300"], 2, env)  # a child too: the group is killed
    assert hang["status"] == "timeout" and hang["seconds"] < 30
    assert steps.run("works", [sys.executable, "-c", "print('{\"x\": 1}')"], 30, env)["status"] == "ok"
    assert gpu_check.last_json(steps.outputs["works"]) == {"x": 1}
    steps.deadline_s = 0  # the overall deadline has passed: later steps are recorded as skipped
    assert steps.run("late", ["true"], 30, env)["status"] == "skipped"
    assert list(steps.results) == ["fails", "hangs", "works", "late"] and steps.results["fails"]["rc"] == 3
    log = (tmp_path / "gpu-check.log").read_text()
    assert "===== fails: failed" in log and "boom" in log and "===== late: skipped" in log


def test_the_markdown_table_shows_every_stage_and_path(capsys):
    from nova_cli.app import run

    assert run(["bench", "--config", "tiny-t2i", "--ar-steps", "2", "--diffusion-steps", "2", "--json"]) == 0
    bench = gpu_check.last_json(capsys.readouterr().out)
    report = {"steps": {"bench_image": {"status": "ok", "seconds": 1.0}}, "environment": None,
              "cuda_tests": gpu_check.parse_pytest("FAILED tests/x.py::test_a - boom\n1 failed, 20 passed in 3s"),
              "parity": [{"case": "t2i", "run": "fast float32", "against": "reference", "max_abs_diff": 2e-6,
                          "ref_max_abs": 2.0}],
              "bench": {"bench_image": bench, "bench_video": None}}
    table = gpu_check.markdown(report)
    assert "{'failed': 1, 'passed': 20}" in table and "tests/x.py::test_a" in table
    assert "| t2i | fast float32 | reference | 2e-06 | 1e-06 |" in table
    for stage in ("text", "temporal", "spatial", "head", "vae_decode"):
        assert f"| {stage} |" in table
    assert "fast " in table and "plain " in table and "bench_video: no result" in table
