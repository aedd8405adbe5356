"""The demo recipe end to end at --smoke size: the official layout, its record, seeded weights,
and the result loads with NOVAPipeline and generates through `nova t2v --model <folder>`."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nova_cli.demo.recipe import main
from nova_core.demo.scenes import FRAME_SIZE
from tests.nova_cli.helpers import run_cli

pytestmark = pytest.mark.slow  # ~10 s of CPU per recipe run

WEIGHTS = ["transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
           "text_encoder/model.safetensors"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recipe's small convolutions; also keeps runs bit-comparable
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("recipe") / "a"
    assert main([str(out), "--smoke"]) == 0
    torch.set_num_threads(threads)
    return out / "checkpoint"


def test_layout_size_and_record(built):
    names = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    assert set(WEIGHTS) | {"model_index.json", "recipe.json", "tokenizer/tokenizer.json",
                           "scheduler/scheduler_config.json", "vae/config.json", "transformer/config.json"} <= names
    assert not any(n.startswith("training_state") for n in names)
    assert sum(p.stat().st_size for p in built.rglob("*") if p.is_file()) <= 25 * 2**20
    index = json.loads((built / "model_index.json").read_text())
    assert index["vae"][1] == "AutoencoderKLOpenSora" and index["scheduler"][1] == "DDPMScheduler"
    record = json.loads((built / "recipe.json").read_text())
    assert len(record["source"]["commit"]) == 40
    assert record["settings"]["train_steps"] == 2 and record["settings"]["num_clips"] == 3
    assert set(record["stages"]) == {"data", "vae", "prepare", "stills", "train", "assemble"}
    assert all(stage["wall_s"] >= 0 and stage["cpu_s"] >= 0 for stage in record["stages"].values())
    assert record["stages"]["prepare"]["items"] == 4 and record["stages"]["prepare"]["skipped"] == 0
    assert record["stages"]["prepare"]["motion_flow"]["min"] > 0  # every clip moves
    assert np.isfinite(record["stages"]["train"]["last_loss"])
    # stills from scratch first (aligned init), then the whole mix from those weights
    assert np.isfinite(record["stages"]["stills"]["last_loss"]) and record["stages"]["data"]["stills"] == 2
    import tomllib

    clips = tomllib.loads((built / "train_config.toml").read_text())
    assert clips["model"]["scratch"] is False and "stills-train" in clips["model"]["checkpoint"]
    assert clips["train"]["loss_repeat"] == 1 and clips["train"]["full_mask_share"] == 0.5
    stills = tomllib.loads((built.parent / "work" / "stills-train" / "config.toml").read_text())
    assert stills["model"]["scratch"] is True and stills["model"]["init"] == "aligned"
    assert stills["train"]["loss_repeat"] == 4
    vae = json.loads((built / "vae" / "config.json").read_text())
    assert vae["scaling_factor"] == pytest.approx(record["stages"]["vae"]["scaling_factor"])


def test_same_command_same_weights(built, tmp_path):
    assert main([str(tmp_path / "b"), "--smoke"]) == 0
    for name in WEIGHTS:
        a, b = load_file(str(built / name)), load_file(str(tmp_path / "b" / "checkpoint" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_loads_and_generates(built, tmp_path, capsys):
    from nova_core import NOVAPipeline

    pipe = NOVAPipeline.from_pretrained(built)
    image = pipe("a red circle moving right on a black background", num_inference_steps=2, num_diffusion_steps=2,
                 output_type="np", generator=torch.Generator().manual_seed(0), disable_progress_bar=True)[0]
    assert image.shape[-3:] == (*FRAME_SIZE, 3) and image.size == FRAME_SIZE[0] * FRAME_SIZE[1] * 3  # one frame
    code, out, err = run_cli(capsys, "t2v", "a blue square moving up on a white background", "--model", built,
                             "--frames", "9", "--ar-steps", "2", "--diffusion-steps", "2", "--flow", "2",
                             "--seed", "1", "-o", tmp_path / "clip.mp4")
    assert code == 0, err
    from nova_cli.media import read_video

    frames, fps = read_video(tmp_path / "clip.mp4")
    assert frames.shape == (9, *FRAME_SIZE, 3) and fps == 12


def test_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "x").write_text("")
    assert main([str(tmp_path)]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def test_a_stopped_run_resumes_to_the_same_weights(built, tmp_path, monkeypatch, capsys):
    from nova_cli.demo import recipe

    real = recipe.nova

    def stop_at_train(*argv):
        if argv[0] == "train":
            raise KeyboardInterrupt
        real(*argv)

    monkeypatch.setattr(recipe, "nova", stop_at_train)
    assert main([str(tmp_path / "c"), "--smoke"]) == 130
    assert "--resume" in capsys.readouterr().err
    assert main([str(tmp_path / "c"), "--smoke", "--resume", "--seed", "1"]) == 1  # other settings: refused
    assert "other settings" in capsys.readouterr().err
    monkeypatch.setattr(recipe, "nova", real)
    assert main([str(tmp_path / "c"), "--smoke", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "vae: finished before, kept" in err and "prepare: finished before, kept" in err
    for name in WEIGHTS:
        a, b = load_file(str(built / name)), load_file(str(tmp_path / "c" / "checkpoint" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    record = json.loads((tmp_path / "c" / "checkpoint" / "recipe.json").read_text())
    assert len(record["resumed"]) == 1 and set(record["stages"]) == {"data", "vae", "prepare", "stills", "train", "assemble"}


def test_resume_needs_a_run(tmp_path, capsys):
    assert main([str(tmp_path / "none"), "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err
