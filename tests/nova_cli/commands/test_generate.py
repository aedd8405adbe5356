"""t2i, t2v, i2v and extend end to end on the tiny checkpoints: files read back, sidecars checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_T2V
from tests.nova_cli.conftest import T2I, T2V, files, read_mp4, sidecar


def test_t2v_writes_an_h264_mp4_with_its_sidecar(nova, tmp_path):
    result = nova("t2v", "a red fox running through fresh snow", *T2V, "--frames", 9, "--flow", 3, "--seed", 7)
    assert result.code == 0, result.err
    path = tmp_path / "a-red-fox-running-through-fresh-snow-s7.mp4"
    assert result.out.strip() == str(path)
    frames, fps, size = read_mp4(path)
    assert frames.shape == (9, 64, 96, 3) and fps == 12 and size == (96, 64)
    meta = sidecar(path)
    assert meta["prompt"] == "a red fox running through fresh snow" and meta["seed"] == 7
    assert meta["command"] == "t2v" and meta["negative_prompt"] == ""
    assert meta["model"] == {"id": str(TINY_T2V), "revision": None, "folder": str(TINY_T2V)}
    assert meta["settings"] | {"presets": None} == meta["settings"] | {
        "presets": None, "frames": 9, "latent_frames": 3, "flow": 3.0, "fps": 12.0, "ar_steps": 2,
        "diffusion_steps": 2, "guidance": 5.0, "width": 96, "height": 64, "output_frames": 9}
    assert meta["settings"]["presets"] == ["video"]
    assert meta["device"] == "cpu" and meta["dtype"] == "float32" and meta["nova_version"] == "0.1.0"
    assert set(meta["timings"]) == {"load", "prepare", "sample", "decode"}
    # the one-line plan names what will happen before the model loads
    plan = result.err.splitlines()[0]
    for part in ("t2v", "96x64", "9 frames (3 latent)", "2 AR x 2 diffusion", "seed 7", "cpu float32", str(path)):
        assert part in plan
    assert files(tmp_path) == [path.name, path.name + ".json"]


def test_same_seed_same_video_and_default_names_stay_unique(nova, tmp_path):
    first = nova("t2v", "waves", *T2V, "--frames", 5, "--seed", 1)
    second = nova("t2v", "waves", *T2V, "--frames", 5, "--seed", 1)
    assert first.code == second.code == 0
    assert first.out.strip().endswith("waves-s1.mp4") and second.out.strip().endswith("waves-s1-2.mp4")
    a, _, _ = read_mp4(first.out.strip())
    b, _, _ = read_mp4(second.out.strip())
    assert np.array_equal(a, b)


def test_fps_and_presets_and_flags_layer(nova, tmp_path):
    result = nova("t2v", "clouds", *T2V, "--preset", "quality", "--ar-steps", 2, "--diffusion-steps", 1,
                  "--frames", 5, "--fps", 8, "--json", "--quiet")
    assert result.code == 0 and result.err == ""
    record = result.records()[0]
    frames, fps, _ = read_mp4(record["path"])
    assert len(frames) == 5 and fps == 8
    s = record["settings"]
    assert s["presets"] == ["video", "quality"] and s["guidance"] == 7.0  # from the preset
    assert s["ar_steps"] == 2 and s["diffusion_steps"] == 1  # flags override it


def test_t2i_writes_pngs_with_text_metadata_one_seed_each(nova, tmp_path):
    result = nova("t2i", "a lighthouse at dusk", *T2I, "--num", 2, "--seed", 40, "--negative-prompt", "blurry",
                  "-g", 3, "--json")
    assert result.code == 0, result.err
    records = result.records()
    assert [r["seed"] for r in records] == [40, 41]
    assert [r["output"] for r in records] == ["a-lighthouse-at-dusk-s40.png", "a-lighthouse-at-dusk-s41.png"]
    for record in records:
        with Image.open(record["path"]) as image:
            assert image.size == (64, 64) and image.mode == "RGB"
            assert image.text["Description"] == "a lighthouse at dusk"
            embedded = json.loads(image.text["nova"])
        assert embedded["seed"] == record["seed"] and embedded["negative_prompt"] == "blurry"
        assert sidecar(record["path"]) == {k: v for k, v in record.items() if k != "path"}
        assert record["settings"]["guidance"] == 3.0 and record["settings"]["presets"] == ["image"]
    one = np.asarray(Image.open(records[0]["path"]))
    two = np.asarray(Image.open(records[1]["path"]))
    assert not np.array_equal(one, two)


def test_t2i_out_file_numbers_several_images(nova, tmp_path):
    result = nova("t2i", "a cat", *T2I, "--num", 2, "--seed", 1, "-o", "pics/cat.png", "--quiet")
    assert result.code == 0
    assert result.out.split() == [str(tmp_path / "pics/cat-1.png"), str(tmp_path / "pics/cat-2.png")]


def test_t2i_from_the_video_checkpoint_is_its_first_frame(nova, tmp_path):
    result = nova("t2i", "a cat", *T2V, "--seed", 1, "-o", "cat.png")
    assert result.code == 0, result.err
    assert Image.open(tmp_path / "cat.png").size == (96, 64)


def test_i2v_first_frame_is_the_image_cropped_and_resized(nova, tmp_path, media):
    result = nova("i2v", media["image"], "--prompt", "a white square slides right", *T2V, "--frames", 9,
                  "--seed", 2)
    assert result.code == 0, result.err
    path = tmp_path / "image-a-white-square-slides-right-s2.mp4"
    frames, fps, size = read_mp4(path)
    assert frames.shape == (9, 64, 96, 3) and fps == 12
    assert "center-cropped 200x120 to 180x120 and resized to 96x64" in result.err
    from nova_cli.media import fit_to_size

    expected, _ = fit_to_size(media["frames"][0], (64, 96))
    assert np.abs(frames[0].astype(int) - expected).mean() < 4  # H.264 of the input itself
    meta = sidecar(path)
    assert meta["input"]["path"] == str(media["image"]) and "center-cropped" in meta["input"]["fitted"]
    assert meta["prompt"] == "a white square slides right"


def test_extend_appends_rounds_of_new_frames_after_the_clip(nova, tmp_path, media):
    result = nova("extend", media["clip"], "--prompt", "the square keeps moving", *T2V, "--frames", 9,
                  "--steps", 2, "--seed", 3, "--json")
    assert result.code == 0, result.err
    record = result.records()[0]
    frames, fps, _ = read_mp4(record["path"])
    # 30 frames at 24 fps -> 15 at 12 fps; window 3 latents, chunk 1 (4 frames), 2 rounds
    assert frames.shape == (15 + 2 * 4, 64, 96, 3) and fps == 12
    from nova_cli.media import fit_to_size, resample_fps

    clip, _ = fit_to_size(resample_fps(media["frames"], 24, 12), (64, 96))
    assert np.abs(frames[:15].astype(int) - clip).mean() < 4  # the input clip comes first, as it was
    s = record["settings"]
    assert (s["steps"], s["chunk"], s["context"], s["flow_setting"]) == (2, 1, 2, "auto")
    assert s["flow"] == pytest.approx(record["input"]["flow_measured"], abs=1e-3) and s["flow"] > 0.5
    assert "motion flow" in result.err and "(measured)" in result.err
    assert record["input"]["frames"] == 15 and record["settings"]["output_frames"] == 23
    assert set(record["timings"]) >= {"encode", "sample", "decode"}


def test_extend_chunk_flow_and_past_the_trained_length(nova, tmp_path, media):
    """tiny-t2v was built for 4 latent frames; the clip gives 4 and 2 rounds add 2 each: 8 in all."""
    result = nova("extend", media["clip"], *T2V, "--frames", 9, "--chunk", 2, "--steps", 2, "--flow", 2,
                  "--seed", 3, "-o", "long.mp4", "--json", "--quiet")
    assert result.code == 0, result.err
    record = result.records()[0]
    assert (record["settings"]["context"], record["settings"]["chunk"]) == (1, 2)
    assert record["settings"]["flow"] == 2.0 and record["input"]["flow_measured"] is None
    assert len(read_mp4(tmp_path / "long.mp4")[0]) == 15 + 2 * 8


def test_low_memory_loads_on_the_cpu_and_hands_the_device_over(nova, tmp_path, monkeypatch, media):
    """The contract with nova_core: low_memory -> NOVAPipeline.enable_low_memory(device), never .to()."""
    from nova_core import NOVAPipeline

    calls = []
    real_enable, real_to = NOVAPipeline.enable_low_memory, NOVAPipeline.to

    def enable_low_memory(self, device, *args, **kwargs):
        calls.append(("enable_low_memory", str(device), str(self.device)))
        return real_enable(self, device, *args, **kwargs)

    def to(self, *args, **kwargs):
        calls.append(("to", *map(str, args)))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(NOVAPipeline, "enable_low_memory", enable_low_memory)
    monkeypatch.setattr(NOVAPipeline, "to", to)
    result = nova("extend", media["clip"], *T2V, "--frames", 5, "--preset", "low-memory", "--json")
    assert result.code == 0, result.err
    # the CLI never moves the pipeline itself; enable_low_memory parks it on the CPU
    assert calls == [("enable_low_memory", "cpu", "cpu"), ("to", "cpu")]
    assert result.records()[0]["settings"]["low_memory"] is True
    assert "cpu float32 low-memory" in next(line for line in result.err.splitlines() if line.startswith("extend"))


def test_t2v_num_makes_one_video_per_seed(nova, tmp_path):
    result = nova("t2v", "waves", *T2V, "--frames", 5, "--num", 2, "--seed", 4, "--json")
    assert result.code == 0, result.err
    records = result.records()
    assert [r["seed"] for r in records] == [4, 5] and [r["output"] for r in records] == ["waves-s4.mp4", "waves-s5.mp4"]
    assert all(r["settings"]["num"] == 2 for r in records)
    assert "2 videos of 5 frames" in result.err.splitlines()[0]
    one, two = (read_mp4(r["path"])[0] for r in records)
    assert not np.array_equal(one, two)
    single = nova("t2v", "waves", *T2V, "--frames", 5, "--seed", 5, "--json").records()[0]
    assert np.array_equal(read_mp4(single["path"])[0], two)  # video i is the video of seed + i


def test_from_a_sidecar_makes_the_same_video_and_flags_override(nova, tmp_path):
    first = nova("t2v", "a red fox in the snow", *T2V, "--frames", 5, "--flow", 3, "-g", 4, "-n", "blurry",
                 "--json", "--quiet").records()[0]
    again = nova("t2v", "--from", first["path"] + ".json", "--json")
    assert again.code == 0, again.err
    record = again.records()[0]
    assert record["path"] != first["path"] and "--from" in again.err and f"seed {first['seed']}" in again.err
    for key in ("prompt", "negative_prompt", "seed", "model", "dtype"):
        assert record[key] == first[key], key
    assert {k: v for k, v in record["settings"].items() if k != "presets"} == \
        {k: v for k, v in first["settings"].items() if k != "presets"}
    assert np.array_equal(read_mp4(record["path"])[0], read_mp4(first["path"])[0])
    # the media file itself names its sidecar too; flags given now win
    changed = nova("t2v", "--from", first["path"], "--seed", 99, "--frames", 9, "--json", "--quiet").records()[0]
    assert changed["seed"] == 99 and changed["settings"]["frames"] == 9 and changed["prompt"] == first["prompt"]
    assert changed["settings"]["guidance"] == 4.0
    other = nova("t2v", "another prompt", "--from", first["path"], "--json", "--quiet").records()[0]
    assert other["prompt"] == "another prompt" and other["seed"] == first["seed"]


def test_from_a_sidecar_a_preset_given_now_overrides_it(nova, tmp_path):
    first = nova("t2v", "clouds", *T2V, "--frames", 5, "--json", "--quiet").records()[0]
    again = nova("t2v", "--from", first["path"], "--preset", "quality", "--diffusion-steps", 1, "--json", "--quiet")
    record = again.records()[0]
    assert record["settings"]["guidance"] == 7.0 and record["settings"]["ar_steps"] == 128  # the preset's
    assert record["settings"]["diffusion_steps"] == 1 and record["settings"]["frames"] == 5  # flag, sidecar


def test_from_a_png_sidecar_makes_the_same_image(nova, tmp_path):
    first = nova("t2i", "a lighthouse", *T2I, "--num", 2, "--seed", 10, "--json", "--quiet").records()[1]
    again = nova("t2i", "--from", first["path"] + ".json", "--json", "--quiet").records()
    assert len(again) == 1 and again[0]["seed"] == 11  # that output's own seed, not the whole --num
    assert np.array_equal(np.asarray(Image.open(again[0]["path"])), np.asarray(Image.open(first["path"])))


def test_from_i2v_and_extend_sidecars_reuse_their_input(nova, tmp_path, media):
    i2v = nova("i2v", media["image"], "--prompt", "slides", *T2V, "--frames", 5, "--json", "--quiet").records()[0]
    ext = nova("extend", media["clip"], *T2V, "--frames", 9, "--json", "--quiet").records()[0]
    assert i2v["input"]["path"] == str(media["image"]) and ext["settings"]["flow_setting"] == "auto"
    for first, command in ((i2v, "i2v"), (ext, "extend")):
        again = nova(command, "--from", first["path"] + ".json", "--json", "--quiet")
        assert again.code == 0, again.err
        record = again.records()[0]
        assert record["input"] == first["input"] and record["prompt"] == first["prompt"]
        assert np.array_equal(read_mp4(record["path"])[0], read_mp4(first["path"])[0]), command


def test_relative_inputs_are_recorded_as_absolute_paths(nova, tmp_path, media):
    import shutil

    shutil.copy(media["image"], tmp_path / "still.png")
    record = nova("i2v", "still.png", *T2V, "--frames", 5, "--json", "--quiet").records()[0]
    assert record["input"]["path"] == str(tmp_path / "still.png")


def test_i2v_of_a_16_bit_gray_png_is_not_white(nova, tmp_path):
    ramp = np.linspace(0, 65535, 64 * 96).reshape(64, 96).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    result = nova("i2v", "gray16.png", *T2V, "--frames", 5, "-o", "g.mp4", "--quiet")
    assert result.code == 0, result.err
    first = read_mp4(tmp_path / "g.mp4")[0][0].astype(int)
    expected = np.round(ramp / 257)
    assert np.abs(first[..., 1] - expected).mean() < 4  # H.264 of the ramp, not a white frame


def test_i2v_of_a_transparent_png_shows_white_where_it_is_transparent(nova, tmp_path):
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 1] = 255  # green hides under the transparent half
    rgba[:32, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    assert nova("i2v", "cutout.png", *T2V, "--frames", 5, "-o", "c.mp4", "--quiet").code == 0
    first = read_mp4(tmp_path / "c.mp4")[0][0].astype(int)
    assert np.abs(first[40:] - 255).mean() < 6 and np.abs(first[:24] - (0, 255, 0)).mean() < 12


def test_a_huge_prompt_is_cut_in_the_tags_and_whole_in_the_sidecar(nova, tmp_path):
    import subprocess

    import imageio_ffmpeg

    prompt = "a fox running through fresh snow at dawn, " * 4000  # ~170 KB: over ffmpeg's argument limit
    video = nova("t2v", prompt, *T2V, "--frames", 5, "-o", "fox.mp4", "--quiet")
    assert video.code == 0, video.err
    assert sidecar(tmp_path / "fox.mp4")["prompt"] == prompt
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "fox.mp4"), "-f",
                            "ffmetadata", "-"], capture_output=True, text=True).stdout
    comment = next(line for line in probe.splitlines() if line.startswith("comment="))
    assert "a fox running" in comment and "truncated" in comment and len(comment.encode()) < 9000
    image = nova("t2i", prompt * 8, *T2I, "-o", "fox.png", "--quiet")  # ~1.3 MB: over Pillow's text chunk limit
    assert image.code == 0, image.err
    with Image.open(tmp_path / "fox.png") as png:
        assert png.text["Description"].startswith("a fox running") and len(png.text["Description"]) < 70_000
        assert json.loads(png.text["nova"])["truncated"]
    assert sidecar(tmp_path / "fox.png")["prompt"] == prompt * 8


def test_frames_past_the_trained_length_get_a_note_with_the_cost(nova, tmp_path):
    from nova_cli.generate import length_warning
    from nova_cli.settings import Settings

    note = length_warning("t2v", Settings(model="m", presets=(), frames=65))
    assert "beyond the 33 frames the checkpoint was trained on" in note and "quality drops" in note
    assert "about 1.9x as long" in note and "nova extend" in note
    assert "each round" in length_warning("extend", Settings(model="m", presets=(), frames=37))
    assert length_warning("t2v", Settings(model="m", presets=(), frames=33)) is None
    assert length_warning("t2i", Settings(model="m", presets=(), frames=None)) is None
    shown = nova("t2v", "waves", *T2V, "--frames", 37, "--ar-steps", 1, "--diffusion-steps", 1)
    assert shown.code == 0, shown.err
    assert "warning: --frames 37 is beyond the 33 frames" in shown.err and "about 1.1x as long" in shown.err
