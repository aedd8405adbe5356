"""Every command once as a real process (`python -m nova_cli`, as the `nova` script runs it)."""

from __future__ import annotations

import json

from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_cli.conftest import FAST, nova_process, read_mp4


def test_every_command_as_a_process(tmp_path, media):
    (tmp_path / "prompts.txt").write_text("a fox\n")
    t2v = ["--model", TINY_T2V, *FAST, "--frames", 5, "--seed", 1, "--json"]
    runs = {
        "t2i": ["t2i", "a fox", "--model", TINY_T2I, *FAST, "--seed", 1, "--json"],
        "t2v": ["t2v", "a fox", *t2v],
        "i2v": ["i2v", media["image"], *t2v],
        "extend": ["extend", media["clip"], *t2v],
        "batch": ["batch", "prompts.txt", *t2v, "-o", "batch"],
        "presets": ["presets", "--json"],
        "models": ["models", "--json", "--cache-dir", tmp_path / "hf"],
        "flow": ["flow", media["clip"], "--json"],
        "download": ["download", "BAAI/nova-d48w1024-sd512", "--cache-dir", tmp_path / "hf"],
    }
    processes = {name: nova_process(args, tmp_path) for name, args in runs.items()}  # 2 cores: run together
    results = {}
    for name, process in processes.items():
        try:
            out, err = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
        results[name] = (process.returncode, out, err)
        assert "Traceback" not in err, (name, err)
    for name in ("t2i", "t2v", "i2v", "extend", "batch", "presets", "models", "flow"):
        assert results[name][0] == 0, (name, results[name][2])
    frames = {name: len(read_mp4(json.loads(results[name][1])["path"])[0]) for name in ("t2v", "i2v", "extend")}
    assert frames == {"t2v": 5, "i2v": 5, "extend": 15 + 4}
    assert "no --prompt" in results["i2v"][2] and "motion flow" in results["extend"][2]
    assert json.loads(results["t2i"][1])["output"] == "a-fox-s1.png"
    assert json.loads(results["batch"][1])["output"] == "a-fox-s1.mp4"
    assert "quality" in {json.loads(line)["name"] for line in results["presets"][1].splitlines()}
    rows = [json.loads(line)["repo_id"] for line in results["models"][1].splitlines()]
    assert len(rows) == 6 and rows[0] == "demo"  # the bundled model, then the five released
    assert json.loads(results["flow"][1])["flow"] > 0
    code, _, err = results["download"]
    assert code == 1 and "nova download BAAI/nova-d48w1024-sd512" in err  # offline here: the one-line hint
