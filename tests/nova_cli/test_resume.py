"""Whether a file holds a batch job's output: the sidecar's identity, not the name, decides."""

from __future__ import annotations

import copy
import json

from nova_cli.resume import difference, fingerprint, identity


def record(**changes) -> dict:
    base = {
        "command": "t2v", "prompt": "a fox", "negative_prompt": "", "seed": 0,
        "model": {"id": "BAAI/nova-d48w1024-osp480", "revision": "abc123", "folder": "/cache/snapshots/abc123"},
        "settings": {"presets": ["video"], "ar_steps": 64, "diffusion_steps": 25, "guidance": 5.0, "width": 768,
                     "height": 480, "low_memory": False, "frames": 33, "latent_frames": 9, "flow": 5.0, "fps": 12.0},
        "input": None, "dtype": None, "device": "cuda:0",
    }
    for key, value in changes.items():
        target, _, leaf = key.rpartition(".")
        (base[target] if target else base)[leaf] = value
    return base


def written(tmp_path, sidecar: dict, name="fox-s0.mp4"):
    output = tmp_path / name
    output.write_bytes(b"video")
    (tmp_path / f"{name}.json").write_text(json.dumps(sidecar))
    return output


def test_how_an_output_was_made_is_not_what_it_is():
    same = record(**{"settings.presets": ["video", "low-memory"], "settings.low_memory": True, "device": "cpu",
                     "settings.output_frames": 33, "dtype": "float16"})
    assert identity(same) == identity(record()) and fingerprint(same) == fingerprint(record())
    for change in ({"seed": 1}, {"prompt": "a fox."}, {"settings.frames": 29}, {"model.revision": "def456"}):
        assert fingerprint(record(**change)) != fingerprint(record())
    assert len(fingerprint(record())) == 8 and int(fingerprint(record()), 16) >= 0


def test_what_differs_is_named(tmp_path):
    output = written(tmp_path, record(dtype="float32"))
    assert difference(record(), output) is None
    cases = {
        "settings changed (frames 33 -> 9, guidance 5.0 -> 3.0)": {"settings.frames": 9, "settings.guidance": 3.0},
        "seed changed (0 -> 4)": {"seed": 4},
        "another prompt": {"prompt": "a fox at night"},
        "another negative prompt": {"negative_prompt": "blurry"},
        "model changed (BAAI/nova-d48w1024-osp480@abc123 -> BAAI/nova-d48w1024-osp480@def456)": {
            "model.revision": "def456"},
        "dtype changed (float32 -> bfloat16)": {"dtype": "bfloat16"},  # asked for: it counts
    }
    for reason, change in cases.items():
        assert difference(record(**change), output) == reason


def test_files_that_are_not_a_finished_output(tmp_path):
    assert difference(record(), tmp_path / "none.mp4") == "no output"
    bare = tmp_path / "bare.mp4"
    bare.write_bytes(b"video")
    assert difference(record(), bare) == "no readable sidecar"
    (tmp_path / "bare.mp4.json").write_text("[1, 2]")
    assert difference(record(), bare) == "no readable sidecar"


def test_a_local_folder_is_the_same_however_it_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = {"id": "ckpt", "revision": None, "folder": str(tmp_path / "ckpt")}
    output = written(tmp_path, record(model=local))
    assert difference(record(model={**local, "id": "./ckpt"}), output) is None
    assert difference(record(model={**local, "folder": str(tmp_path / "other")}), output).startswith("model changed")


def test_inputs_count_by_content_and_older_sidecars_by_path(tmp_path):
    image = {"path": str(tmp_path / "a.png"), "sha256": "1" * 64}
    output = written(tmp_path, record(command="i2v", input=image))
    assert difference(record(command="i2v", input=image), output) is None
    assert difference(record(command="i2v", input={**image, "sha256": "2" * 64}), output) == "the input file changed"
    assert difference(record(command="i2v", input={**image, "path": "/b.png"}), output) == "another input file"
    old = copy.deepcopy(image)
    del old["sha256"]
    older = written(tmp_path, record(command="i2v", input=old), "old.mp4")
    assert difference(record(command="i2v", input=image), older) is None


def test_extend_compares_the_flow_it_was_asked_for_not_the_measured_one(tmp_path):
    made = record(command="extend", **{"settings.flow": 3.217, "settings.flow_setting": "auto"})
    output = written(tmp_path, made)
    assert difference(record(command="extend", **{"settings.flow": "auto", "settings.flow_setting": "auto"}),
                      output) is None
    assert difference(record(command="extend", **{"settings.flow": 2.0, "settings.flow_setting": 2.0}),
                      output) == "settings changed (flow_setting auto -> 2.0)"
