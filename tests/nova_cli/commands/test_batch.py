"""nova batch: JSONL and prompt lists, resume, failures that do not stop the rest, torchrun."""

from __future__ import annotations

import hashlib
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
        assert result.err.index(message) < result.err.index("job 1/4")  # every line is checked first
    assert sidecar(out / "rain.mp4")["settings"]["flow"] == 2.0
    assert len(read_mp4(out / "clip-ext-s9.mp4")[0]) == 15 + 4
    assert "Traceback" not in result.err
    before = mtimes(out)
    again = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--quiet")
    assert again.code == 1 and mtimes(out) == before
    assert len(again.out.split()) == 5  # --quiet: the paths, and on stderr only the invalid lines
    assert again.err.splitlines() == [line for line in again.err.splitlines() if line.startswith("error: line ")]
    assert len(again.err.splitlines()) == 5


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
    assert "nova batch (interrupted): " in err and "not run" in err  # what finished, and what did not
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


def test_resume_trusts_the_sidecar_not_the_name(nova, tmp_path):
    """Other settings under the same name are redone beside the old file, and the summary says why."""
    (tmp_path / "p.txt").write_text("a red fox\n")
    assert nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out").code == 0
    old = tmp_path / "out" / "a-red-fox-s0.mp4"
    before = old.stat().st_mtime_ns
    nine = nova("batch", "p.txt", *T2V, "--frames", 9, "-o", "out")
    assert nine.code == 0 and "1 done, 0 skipped" in nine.err
    assert "redone: settings changed (frames 5 -> 9); a-red-fox-s0.mp4 kept" in nine.err
    (new,) = [Path(p) for p in nine.out.split()]
    assert new.parent == old.parent and new.name.startswith("a-red-fox-s0-") and new != old
    assert len(read_mp4(new)[0]) == 9 and sidecar(new)["settings"]["frames"] == 9
    assert len(read_mp4(old)[0]) == 5 and old.stat().st_mtime_ns == before  # the old one is kept as it was
    for frames, found in ((9, new), (5, old)):  # both are found again: nothing is redone
        again = nova("batch", "p.txt", *T2V, "--frames", frames, "-o", "out")
        assert again.code == 0 and "0 done, 1 skipped" in again.err and again.out.split() == [str(found)]
    seeded = nova("batch", "p.txt", *T2V, "--frames", 5, "--seed", 3, "-o", "out", "--dry-run", "--json")
    assert seeded.records()[0]["status"] == "to do"
    assert seeded.records()[0]["to_do"] == [str(old.parent / "a-red-fox-s3.mp4")]
    guided = nova("batch", "p.txt", *T2V, "--frames", 5, "-g", 3, "-o", "out", "--dry-run", "--json")
    assert guided.records()[0]["reasons"] == ["redone: settings changed (guidance 5.0 -> 3.0); "
                                                   "a-red-fox-s0.mp4 kept"]
    replaced = nova("batch", "p.txt", *T2V, "--frames", 9, "-o", "out", "--overwrite")
    assert replaced.code == 0 and replaced.out.split() == [str(old)]  # --overwrite redoes, under the name
    assert "replaced: settings changed (frames 5 -> 9)" in replaced.err and len(read_mp4(old)[0]) == 9


def test_long_and_non_latin_prompts_get_names_of_their_own(nova, tmp_path):
    start = "an astronaut in a white suit walks slowly across the red dunes of mars"
    prompts = [f"{start} at dawn", f"{start} at dusk", "東京の夜景、雨に濡れた通り", "富士山の朝焼け", "🦊", "🌲"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n")
    first = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out", "--json")
    assert first.code == 0, first.err
    records = first.records()
    assert [r["prompt"] for r in records] == prompts
    names = [Path(r["path"]).name for r in records]
    assert len(set(names)) == len(prompts)  # each job its own file
    assert names[2].startswith("東京の夜景-雨に濡れた通り-s0") and names[3] == "富士山の朝焼け-s0.mp4"
    assert names[0].startswith("an-astronaut-in-a-white-suit-walks-slowly-across-s0-")  # words + fingerprint
    assert all(sidecar(r["path"])["prompt"] == r["prompt"] for r in records)
    again = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out", "--json")
    assert "0 done, 6 skipped" in again.err and [r["path"] for r in again.records()] == [r["path"] for r in records]

    # An edited prompt that keeps its first words is another job: made, the old output kept.
    (tmp_path / "p.txt").write_text("東京の夜景、雨に濡れた通り、ネオン\n")
    edited = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out")
    assert edited.code == 0 and "redone: another prompt" not in edited.err
    assert sidecar(edited.out.split()[0])["prompt"] == "東京の夜景、雨に濡れた通り、ネオン"
    assert Path(records[2]["path"]).exists()


def test_a_name_another_job_holds_is_not_taken_as_done(nova, tmp_path):
    start = "a lighthouse on a rocky cliff above a stormy sea, waves crashing hard"
    (tmp_path / "p.txt").write_text(f"{start}, at night\n")
    made = Path(nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out").out.split()[0])
    (tmp_path / "p.txt").write_text(f"{start}, at noon\n")  # the same first 48 characters
    plan = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out", "--dry-run", "--json").records()[0]
    assert plan["status"] == "to do" and plan["to_do"] != [str(made)]
    assert plan["reasons"] == [f"redone: another prompt; {made.name} kept"]


def test_dry_run_prints_the_plan_and_loads_no_model(nova, tmp_path, monkeypatch):
    (tmp_path / "p.txt").write_text("a fox\n")
    assert nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out").code == 0
    (tmp_path / "jobs.jsonl").write_text("\n".join([
        json.dumps({"prompt": "a fox", "frames": 5}), json.dumps({"prompt": "an owl", "frames": 5}),
        json.dumps({"prompt": "an owl", "frames": 5}), json.dumps({"prompt": "a bee", "frames": 6})]) + "\n")

    def no_loading(*args, **kwargs):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr("nova_cli.runtime.load_pipeline", no_loading)
    before = files(tmp_path)
    result = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--dry-run", "--json")
    assert result.code == 1  # there are invalid lines
    assert [(r["line"], r["status"]) for r in result.records()] == [
        (1, "done"), (2, "to do"), (3, "invalid"), (4, "invalid")]
    records = result.records()
    assert records[0]["done"] == [str(tmp_path / "out" / "a-fox-s0.mp4")]
    assert records[1]["to_do"] == [str(tmp_path / "out" / "an-owl-s0.mp4")]
    assert "the same job as line 2" in records[2]["error"] and "nearest valid: 5 or 9" in records[3]["error"]
    table = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--dry-run")
    assert "1 to do, 1 done, 2 invalid (dry run" in table.out and "an-owl-s0.mp4" in table.out
    assert files(tmp_path) == before


def test_invalid_utf8_is_one_bad_line_not_a_bad_file(nova, tmp_path):
    (tmp_path / "jobs.jsonl").write_bytes(b'{"prompt": "a fox"}\n{"prompt": "caf\xe9"}\n{"prompt": "an owl"}\n')
    (tmp_path / "p.txt").write_bytes(b"a frog\nna\xefve \xff\n")
    result = nova("batch", "jobs.jsonl", *T2V, "--frames", 5, "-o", "out", "--dry-run", "--json")
    assert [(r["line"], r["status"]) for r in result.records()] == [(1, "to do"), (2, "invalid"), (3, "to do")]
    assert result.records()[1]["error"].startswith("not valid UTF-8 (byte 0xe9 at byte 16)")
    plain = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out")
    assert plain.code == 1 and "error: line 2: not valid UTF-8" in plain.err
    assert "1 done, 0 skipped (already there), 1 failed" in plain.err
    (tmp_path / "u16.txt").write_bytes("a fox\n".encode("utf-16"))
    u16 = nova("batch", "u16.txt", *T2V)
    assert u16.code == 1 and "saved as UTF-16; save it as UTF-8" in u16.err


def test_relative_outs_stay_in_the_out_folder(nova, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(outside)
    outs = ["../escape.mp4", "sub/../../escape.mp4", "link/escape.mp4", "sub/fine.mp4", str(outside / "mine.mp4"),
            "nested/"]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps({"prompt": f"job {i}", "frames": 5, "out": o}) + "\n"
                                                 for i, o in enumerate(outs)))
    result = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--dry-run", "--json")
    records = result.records()
    assert [r["status"] for r in records] == ["invalid"] * 3 + ["to do"] * 3
    assert all("outside the --out folder out" in r["error"] for r in records[:3])
    assert [r["to_do"] for r in records[3:]] == [[str(tmp_path / "out/sub/fine.mp4")], [str(outside / "mine.mp4")],
                                                 [str(tmp_path / "out/nested/job-5-s0.mp4")]]


def test_output_paths_that_are_folders_are_checked_before_any_job(nova, tmp_path):
    (tmp_path / "p.txt").write_text("a fox\nan owl\na frog\n")
    (tmp_path / "out" / "a-fox-s0.mp4").mkdir(parents=True)
    (tmp_path / "out" / "an-owl-s0.mp4.json").mkdir()
    (tmp_path / "out" / "a-frog-s0.mp4.json").write_text("{}")  # a sidecar without its output is not replaced
    plan = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out", "--dry-run", "--json").records()
    assert all(r["status"] == "to do" and "-s0-" in r["to_do"][0] for r in plan)  # the names are taken
    forced = nova("batch", "p.txt", *T2V, "--frames", 5, "-o", "out", "--overwrite")
    assert forced.code == 1 and "1 done" in forced.err and "job 2/" not in forced.err  # only the frog ran
    assert sidecar(tmp_path / "out" / "a-frog-s0.mp4")["prompt"] == "a frog"
    assert "a-fox-s0.mp4 is a folder" in forced.err and "an-owl-s0.mp4.json is a folder" in forced.err


def test_the_empty_prompt_is_one_rule_for_every_command(nova, tmp_path):
    for command in ("t2v", "t2i"):
        result = nova(command, "  ", "--model", TINY_T2V if command == "t2v" else TINY_T2I, *FAST)
        assert result.code == 2 and f"{command} needs a prompt: describe what to generate" in result.err
    (tmp_path / "jobs.jsonl").write_text('{"prompt": ""}\n{"command": "t2i", "prompt": " ", "model": "%s"}\n'
                                         % TINY_T2I)
    batch = nova("batch", "jobs.jsonl", *T2V, "-o", "out")
    assert batch.code == 1 and "line 1: t2v needs a prompt" in batch.err and "line 2: t2i needs a prompt" in batch.err
    assert files(tmp_path) == ["jobs.jsonl"]


def test_a_prompt_list_on_an_image_checkpoint_makes_images(nova, tmp_path, media):
    (tmp_path / "p.txt").write_text("a lighthouse\n")
    result = nova("batch", "p.txt", "--model", TINY_T2I, *FAST, "-o", "out")
    assert result.code == 0, result.err
    assert [Path(p).name for p in result.out.split()] == ["a-lighthouse-s0.png"]
    assert sidecar(result.out.split()[0])["command"] == "t2i"
    forced = nova("batch", "p.txt", "--model", TINY_T2I, *FAST, "--command", "t2v", "-o", "out")
    assert forced.code == 1 and "is an image checkpoint (2D VAE): t2v needs a video one" in forced.err
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"image": str(media["image"])}) + "\n"
                                         + json.dumps({"clip": str(media["clip"])}) + "\n"
                                         + json.dumps({"command": "t2v", "prompt": "x", "image": "a.png"}) + "\n")
    plan = nova("batch", "jobs.jsonl", *T2V, "--dry-run", "--json").records()
    assert [r["command"] for r in plan] == ["i2v", "extend", "t2v"]
    assert plan[2]["error"] == "image is for i2v jobs, not t2v"


def test_batch_help_tells_the_seed_it_uses(nova):
    text = " ".join(nova("batch", "--help").out.split())
    assert "default: 0, so that a batch is reproducible" in text and "random" not in text
    assert "--dry-run" in text


def test_more_images_of_a_t2i_job_make_only_the_new_ones(nova, tmp_path):
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"prompt": "a lighthouse", "seed": 4}) + "\n")
    two = nova("batch", "jobs.jsonl", "--model", TINY_T2I, *FAST, "--num", 2, "-o", "out")
    assert two.code == 0 and [Path(p).name for p in two.out.split()] == ["a-lighthouse-s4.png", "a-lighthouse-s5.png"]
    before = mtimes(tmp_path / "out")
    three = nova("batch", "jobs.jsonl", "--model", TINY_T2I, *FAST, "--num", 3, "-o", "out", "--json")
    assert three.code == 0 and "1 done, 0 skipped" in three.err
    assert [(Path(r["path"]).name, r.get("skipped", False)) for r in three.records()] == [
        ("a-lighthouse-s4.png", True), ("a-lighthouse-s5.png", True), ("a-lighthouse-s6.png", False)]
    assert {k: v for k, v in mtimes(tmp_path / "out").items() if k in before} == before


def test_an_input_replaced_under_its_name_is_another_job(nova, tmp_path, media):
    from PIL import Image

    (tmp_path / "still.png").write_bytes(media["image"].read_bytes())
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"image": "still.png", "prompt": "it moves", "frames": 5}) + "\n")
    made = nova("batch", "jobs.jsonl", *T2V, "-o", "out")
    assert made.code == 0, made.err
    assert sidecar(made.out.split()[0])["input"]["sha256"] == hashlib.sha256(media["image"].read_bytes()).hexdigest()
    assert nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--dry-run", "--json").records()[0]["status"] == "done"
    Image.fromarray(media["frames"][-1]).save(tmp_path / "still.png")
    plan = nova("batch", "jobs.jsonl", *T2V, "-o", "out", "--dry-run", "--json").records()[0]
    assert plan["status"] == "to do" and plan["reasons"] == ["redone: the input file changed; "
                                                             "still-it-moves-s0.mp4 kept"]
