"""Every bad input the issue lists: one line on stderr, the right exit code, no traceback, no file.

Exit codes: 2 when the command line must change (values, presets, output names, a device this
machine lacks), 1 when something it names fails at run time (input files, model, memory, output
folder), 130 on Ctrl-C.
"""

from __future__ import annotations

import time

import pytest
import torch

from tests.conftest import TINY_T2I
from tests.nova_cli.conftest import T2V, files

NO_GPU = not torch.cuda.is_available()


def raise_in_decode(monkeypatch):
    from nova_core import NOVAPipeline

    def decode_latents(self, latents):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(NOVAPipeline, "decode_latents", decode_latents)


def raise_in_sampling(monkeypatch):
    import nova_core.pipeline

    def sample_video(*args, **kwargs):
        kwargs["progress"].start(2, 0, 2)
        raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(nova_core.pipeline, "sample_video", sample_video)


def broken_user_preset(monkeypatch):
    import os
    from pathlib import Path

    folder = Path(os.environ["NOVA_CONFIG_DIR"]) / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.toml").write_text("frames = 30\n")


def folder_at_the_sidecar(monkeypatch):
    from pathlib import Path

    Path("out.mp4.json").mkdir()  # the test runs in its own folder


def sidecar_of_another_command(monkeypatch):
    from pathlib import Path

    Path("pic.png.json").write_text('{"sidecar_version": 1, "command": "t2i", "prompt": "a", "settings": {}}')


def unexpected_error_when_loading(monkeypatch):
    from nova_cli import runtime

    def load_pipeline(*args):
        raise ValueError("boom\nsecond line of a library's message")

    monkeypatch.setattr(runtime, "load_pipeline", load_pipeline)


def write_bomb(path, width=20000, height=20000):
    """A PNG whose header claims ``width`` x ``height`` pixels: a few bytes that would decode to 400 MB."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return write_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


HUB = "BAAI/nova-d48w1024-osp480"  # not cached here, and the Hub does not resolve

# (id, arguments, exit code, part of the message, setup)
CASES = [
    ("unknown preset", ["t2v", "a", *T2V, "--preset", "nope"], 2, "unknown preset 'nope' (known: demo, fast, image", None),
    ("bad value in a preset file", ["t2v", "a", *T2V, "--preset", "mine"], 2,
     "frames = 30 in preset 'mine'", broken_user_preset),
    ("not a checkpoint", ["t2v", "a", "--model", "{media}"], 1, "not a NOVA checkpoint (no model_index.json)", None),
    ("no such model folder", ["t2v", "a", "--model", "./nowhere/ckpt"], 1, "no such checkpoint folder", None),
    ("hub not reachable, not cached", ["t2v", "a", "--model", "BAAI/nova-d48w1024-osp480"], 1,
     "on a machine with a network run `nova download BAAI/nova-d48w1024-osp480 --local-dir DIR`, copy DIR here"
     " and pass `--model DIR`", None),
    ("image missing", ["i2v", "{media}/missing.png", *T2V], 1, "missing.png: no such file", None),
    ("image is a folder", ["i2v", "{media}", *T2V], 1, "is a folder, not a file", None),
    ("not an image", ["i2v", "{text}", *T2V], 1, "notes.txt: not a readable image", None),
    ("clip missing", ["extend", "{media}/missing.mp4", *T2V], 1, "missing.mp4: no such file", None),
    ("not a video", ["extend", "{text}", *T2V], 1, "notes.txt: not a readable video", None),
    ("clip too short", ["extend", "{short}", *T2V], 1,
     "clip too short for extend: 3 frame(s) at 12 fps, needs at least 5", None),
    ("invalid frame count", ["t2v", "a", *T2V, "--frames", 30], 2, "--frames 30: the video VAE makes 1 + 4k frames", None),
    ("invalid frame count, nearest", ["t2v", "a", *T2V, "--frames", 2], 2, "nearest valid: 5", None),
    ("flow out of range", ["t2v", "a", *T2V, "--flow", 25], 2, "--flow 25.0: out of range: motion flow is 0..20", None),
    ("negative flow", ["i2v", "{image}", *T2V, "--flow", -1], 2, "out of range", None),
    ("ar steps < 1", ["t2v", "a", *T2V, "--ar-steps", 0], 2, "--ar-steps 0: must be 1 or more", None),
    ("diffusion steps < 1", ["t2i", "a", "--model", str(TINY_T2I), "--diffusion-steps", -3], 2,
     "--diffusion-steps -3: must be 1 or more", None),
    ("extend steps < 1", ["extend", "{clip}", *T2V, "--steps", 0], 2, "--steps 0: must be 1 or more", None),
    ("chunk too large", ["extend", "{clip}", *T2V, "--frames", 9, "--chunk", 3], 2, "--chunk 3: must be 1..2", None),
    ("num < 1", ["t2i", "a", "--model", str(TINY_T2I), "--num", 0], 2, "--num 0: must be 1 or more", None),
    ("bad dtype", ["t2v", "a", *T2V, "--dtype", "int8"], 2, "--dtype int8: must be one of auto", None),
    ("negative seed", ["t2v", "a", *T2V, "--seed", -5], 2, "--seed -5: must be between 0", None),
    ("image checkpoint for video", ["t2v", "a", "--model", str(TINY_T2I)], 2, "is an image checkpoint", None),
    ("wrong output suffix", ["t2v", "a", *T2V, "-o", "out.png"], 2, "t2v writes MP4 files", None),
    ("output not writable", ["t2v", "a", *T2V, "-o", "/proc/nova/out.mp4"], 1, "output folder /proc/nova is not writable", None),
    ("output under a file", ["t2v", "a", *T2V, "-o", "{text}/out.mp4"], 1, "notes.txt is a file", None),
    ("cuda without a gpu" if NO_GPU else "no such gpu", ["t2v", "a", *T2V, "--device", "cuda" if NO_GPU else "cuda:99"],
     2, "CUDA requested but no GPU is available" if NO_GPU else "no such GPU", None),
    ("unknown device", ["t2v", "a", *T2V, "--device", "tpu"], 2, "--device tpu: unknown device", None),
    ("out of memory in the decode", ["t2v", "a", *T2V, "--frames", 5], 1,
     "out of memory while decoding with the VAE (stage 'decode'); the video was sampled but not decoded; "
     "try --preset low-memory", raise_in_decode),
    ("out of memory while sampling", ["t2v", "a", *T2V, "--frames", 5, "--preset", "low-memory"], 1,
     "out of memory while sampling (stage 'sample'); try fewer --frames", raise_in_sampling),
    ("image is a decompression bomb", ["i2v", "{bomb}", *T2V], 1,
     "bomb.png: the image is too large (400,000,000 pixels): nova reads at most 178,956,970 pixels", None),
    ("image missing, model not cached: the image first", ["i2v", "{media}/missing.png", "--model", HUB], 1,
     "missing.png: no such file", None),
    ("bomb, model not cached: the image first", ["i2v", "{bomb}", "--model", HUB], 1, "the image is too large", None),
    ("not a video, model not cached: the clip first", ["extend", "{text}", "--model", HUB], 1,
     "notes.txt: not a readable video", None),
    ("flow: not a video, model not cached: the clip first", ["flow", "{text}", "--model", HUB], 1,
     "notes.txt: not a readable video", None),
    ("sidecar path is a folder", ["t2v", "a", *T2V, "-o", "out.mp4"], 2,
     "out.mp4.json is a folder, where its sidecar would be written", folder_at_the_sidecar),
    ("sidecar path is a folder, --overwrite", ["t2v", "a", *T2V, "-o", "out.mp4", "--overwrite"], 2,
     "out.mp4.json is a folder", folder_at_the_sidecar),
    ("absurd --num", ["t2i", "a", "--model", str(TINY_T2I), "--num", 10**9], 2,
     "--num 1000000000: must be 1..1000", None),
    ("absurd --num for videos", ["t2v", "a", *T2V, "--num", 10**9], 2, "--num 1000000000: must be 1..1000", None),
    ("absurd --frames", ["t2v", "a", *T2V, "--frames", 4 * 10**8 + 1], 2,
     "--frames 400000001: at most 513 frames (the checkpoint was trained on 33); for longer videos use nova extend",
     None),
    ("absurd extend --steps", ["extend", "{clip}", *T2V, "--steps", 10**9], 2, "--steps 1000000000: must be 1..250",
     None),
    ("--from a missing sidecar", ["t2v", "--from", "gone.mp4.json", *T2V], 1, "--from gone.mp4.json: no such file",
     None),
    ("--from a file that is not a sidecar", ["t2v", "--from", "{text}"], 1, "notes.txt: not a nova sidecar", None),
    ("--from another command's sidecar", ["t2v", "--from", "pic.png.json"], 2,
     "made by nova t2i; re-run it with nova t2i --from pic.png.json", sidecar_of_another_command),
    ("an error nova did not anticipate", ["t2v", "a", *T2V, "--frames", 5], 1,
     "internal error: ValueError: boom (run again with --debug for the traceback)", unexpected_error_when_loading),
]


@pytest.mark.parametrize("argv, code, message, setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(nova, tmp_path, media, bomb, monkeypatch, argv, code, message, setup):
    if setup is not None:
        setup(monkeypatch)
    places = {"media": media["clip"].parent, "text": media["text"], "short": media["short"],
              "clip": media["clip"], "image": media["image"], "bomb": bomb}
    args = [str(a).format(**places) for a in argv]
    before = files(tmp_path)  # what the setup made
    started = time.perf_counter()
    result = nova(*args)
    assert time.perf_counter() - started < 20  # fails within seconds (Hub included)
    assert result.code == code, result.err
    assert "Traceback" not in result.err and result.out == ""
    if message:
        error = [line for line in result.err.splitlines() if line.startswith("nova: error:")]
        assert len(error) == 1 and message in error[0], result.err
    assert files(tmp_path) == before


def test_click_usage_errors_exit_2_without_traceback(nova):
    for args in (["t2v"], ["t2i", "a", "--frames", "5"], ["t2v", "a", "--seed", "x"], ["nope"]):
        result = nova(*args)
        assert result.code == 2 and "Traceback" not in result.err and "Error" in result.err


def test_existing_output_is_never_overwritten_without_overwrite(nova, tmp_path):
    (tmp_path / "taken.mp4").write_bytes(b"precious")
    result = nova("t2v", "a", *T2V, "-o", "taken.mp4")
    assert result.code == 2 and "taken.mp4 exists: pass --overwrite" in result.err
    assert (tmp_path / "taken.mp4").read_bytes() == b"precious"
    assert files(tmp_path) == ["taken.mp4"]


def test_overwrite_replaces(nova, tmp_path):
    (tmp_path / "taken.mp4").write_bytes(b"old")
    result = nova("t2v", "a", *T2V, "--frames", 5, "-o", "taken.mp4", "--overwrite", "--quiet")
    assert result.code == 0 and (tmp_path / "taken.mp4").read_bytes() != b"old"


def test_debug_shows_the_traceback(nova):
    result = nova("--debug", "t2v", "a", *T2V, "--frames", 30)
    assert result.code == 2 and "Traceback" in result.err and "nova: error: --frames 30" in result.err


def test_debug_shows_the_traceback_of_an_unexpected_error(nova, monkeypatch):
    unexpected_error_when_loading(monkeypatch)
    result = nova("--debug", "t2v", "a", *T2V, "--frames", 5)
    assert result.code == 1 and "Traceback" in result.err and 'raise ValueError("boom' in result.err
    assert "nova: error: internal error: ValueError: boom" in result.err and "--debug for" not in result.err


def test_a_sidecar_without_its_output_is_not_replaced(nova, tmp_path):
    (tmp_path / "out.mp4.json").write_text("precious")
    result = nova("t2v", "a", *T2V, "--frames", 5, "-o", "out.mp4")
    assert result.code == 2 and "out.mp4.json exists (a sidecar without its output): pass --overwrite" in result.err
    assert files(tmp_path) == ["out.mp4.json"] and (tmp_path / "out.mp4.json").read_text() == "precious"


def test_checks_come_before_the_model_loads(nova, tmp_path, monkeypatch):
    """A folder where the sidecar goes fails at once, not after the whole generation ran."""
    from nova_cli import runtime

    loads = []
    monkeypatch.setattr(runtime, "load_pipeline", lambda *args: loads.append(args))
    (tmp_path / "out.mp4.json").mkdir()
    result = nova("t2v", "a", *T2V, "--frames", 5, "-o", "out.mp4")
    assert result.code == 2 and loads == []


def test_library_warnings_do_not_reach_stderr(nova, tmp_path, media, monkeypatch):
    """An image past Pillow's warning size (not its limit) is read; no Python warning is printed."""
    import warnings

    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 120 - 1)  # image.png is 200x120: a warning, no error

    def noisy_load(*args):
        warnings.warn("torch.load is deprecated here", FutureWarning)
        raise KeyboardInterrupt  # enough: the image was read, the plan printed

    from nova_cli import runtime

    monkeypatch.setattr(runtime, "load_pipeline", noisy_load)
    import sys

    def show(message, category, filename, lineno, file=None, line=None):  # as Python does outside pytest
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        result = nova("i2v", media["image"], *T2V, "--frames", 5)
    assert result.code == 130
    assert "Warning" not in result.err and "warnings.warn" not in result.err, result.err


def test_ctrl_c_while_writing_leaves_no_partial_file(nova, tmp_path, monkeypatch):
    from nova_cli import writing

    def interrupted(path, frames, fps, comment=""):
        path.write_bytes(b"half an mp4")
        raise KeyboardInterrupt

    monkeypatch.setattr(writing, "write_mp4", interrupted)
    result = nova("t2v", "a", *T2V, "--frames", 5)
    assert result.code == 130 and "nova: error: interrupted" in result.err
    assert files(tmp_path) == []


def test_ctrl_c_while_sampling_exits_130(nova, tmp_path, monkeypatch):
    import nova_core.pipeline

    def sample_video(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nova_core.pipeline, "sample_video", sample_video)
    result = nova("t2v", "a", *T2V, "--frames", 5)
    assert result.code == 130 and files(tmp_path) == []
