"""End to end on the bundled demo model: what a newcomer's first commands show, read by the detector.

Every case runs the real `nova` command (its defaults are the demo preset's) and reads the MP4 or
PNG back. The prompts and seeds are fixed; the full measurement over 48 random prompts is
``python -m tests.nova_cli.demo.measure`` (its numbers are in the README).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nova_core import demo
from nova_core.demo.scenes import BACKGROUNDS, COLOURS, parse_caption, random_scene
from tests.nova_cli.demo.measure import clean_share, last_round, nova, read_mp4
from tests.nova_core.demo import detector


PROMPTS = ["a red circle moving right on a black background",
           "a yellow square moving left on a blue background",
           "a cyan triangle moving down on a gray background"]


def test_it_ships_whole_and_says_where_it_came_from():
    files = [p for p in demo.CHECKPOINT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    names = {p.relative_to(demo.CHECKPOINT).as_posix() for p in files}
    assert {"model_index.json", "recipe.json", "transformer/config.json", "vae/config.json",
            "text_encoder/config.json", "tokenizer/tokenizer.json", "scheduler/scheduler_config.json"} <= names
    assert not any(n.endswith((".py", ".bin", ".pt", ".pth", ".pkl")) for n in names)
    recipe = json.loads((demo.CHECKPOINT / "recipe.json").read_text())
    assert len(recipe["source"]["commit"]) == 40 and recipe["source"]["dirty"] is False
    assert demo.resolution() == "160x96"


def test_the_documented_command_rebuilds_it():
    """The shipped weights came from the recipe's current default settings (seed 0), so
    `python -m nova_cli.demo.recipe OUTDIR` makes them again; changing a default means rebuilding."""
    from nova_cli.demo.recipe import RecipeSettings

    recipe = json.loads((demo.CHECKPOINT / "recipe.json").read_text())
    assert recipe["settings"] == json.loads(json.dumps(RecipeSettings().to_dict()))
    assert set(recipe["stages"]) == {"data", "vae", "prepare", "stills", "train", "assemble"}


def test_models_lists_it(capsys, monkeypatch):
    from tests.nova_cli.helpers import run_cli

    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "│ demo " in out and "160x96" in out


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_t2i_draws_the_caption(prompt, tmp_path):
    path = tmp_path / "image.png"
    nova("t2i", prompt, "--model", "demo", "--seed", 1, "-o", path)
    reading = detector.read(np.asarray(Image.open(path).convert("RGB")))
    want = parse_caption(prompt)
    assert (reading.background, reading.colour) == (want["background"], want["colour"])


@pytest.mark.parametrize("prompt", PROMPTS)
def test_t2v_draws_the_caption_in_every_frame(prompt, tmp_path):
    path = tmp_path / "clip.mp4"
    nova("t2v", prompt, "--model", "demo", "--seed", 1, "-o", path)
    frames = read_mp4(path)
    assert frames.shape == (33, 96, 160, 3)
    reading, want = detector.read(frames), parse_caption(prompt)
    assert reading.present.all()
    assert (reading.background, reading.colour) == (want["background"], want["colour"])


def test_i2v_starts_from_the_image_and_keeps_its_object(tmp_path):
    scene = random_scene(np.random.default_rng(3), colour="green", shape="square", direction="up", background="white")
    first = scene.render()[0]
    Image.fromarray(first).save(tmp_path / "first.png")
    nova("i2v", tmp_path / "first.png", "--prompt", scene.caption, "--model", "demo", "--seed", 1,
         "-o", tmp_path / "clip.mp4")
    frames = read_mp4(tmp_path / "clip.mp4")
    assert np.abs(frames[0].astype(float) - first).mean() < 4.0
    reading = detector.read(frames)
    assert reading.present.all() and (reading.colour, reading.background) == ("green", "white")


def test_three_extensions_keep_the_object_and_stay_sharp(tmp_path):
    prompt = PROMPTS[0]
    want = parse_caption(prompt)
    nova("t2v", prompt, "--model", "demo", "--seed", 2, "-o", tmp_path / "clip.mp4")
    nova("extend", tmp_path / "clip.mp4", "--prompt", prompt, "--steps", 3, "--model", "demo", "--seed", 2,
         "-o", tmp_path / "longer.mp4")
    first, longer = read_mp4(tmp_path / "clip.mp4"), read_mp4(tmp_path / "longer.mp4")
    assert len(longer) > len(first)
    for frame in longer:
        reading = detector.read(frame)
        assert reading.present.all() and reading.colour == want["colour"]
    background, colour = BACKGROUNDS[want["background"]], COLOURS[want["colour"]]
    last = last_round(longer, first, 3)
    assert clean_share(first, background, colour) - clean_share(last, background, colour) <= 0.05
