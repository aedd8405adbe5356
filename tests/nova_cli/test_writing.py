"""Atomic writes: complete files under their real names, or nothing at all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nova_cli.errors import CliError
from nova_cli.writing import commit, write_mp4, write_png
from tests.nova_cli.conftest import files, read_mp4


def video(count=5, height=64, width=96):
    return np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def test_mp4_keeps_sizes_that_are_not_multiples_of_16(tmp_path):
    write_mp4(tmp_path / "v.mp4", video(7, 66, 98), 12, comment="hello")
    frames, fps, size = read_mp4(tmp_path / "v.mp4")
    assert frames.shape == (7, 66, 98, 3) and fps == 12 and size == (98, 66)


def test_mp4_is_h264_yuv420p(tmp_path):
    import subprocess

    import imageio_ffmpeg

    write_mp4(tmp_path / "v.mp4", video(), 12)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "v.mp4")],
                           capture_output=True, text=True).stderr
    assert "h264" in probe and "yuv420p" in probe


def test_odd_sizes_are_refused(tmp_path):
    with pytest.raises(CliError, match="must be even"):
        write_mp4(tmp_path / "v.mp4", video(2, 65, 96), 12)


def test_commit_writes_media_and_sidecar(tmp_path):
    image = video(1)[0]
    commit(tmp_path / "out" / "a.png", lambda p: write_png(p, image, {"nova": "{}"}), {"seed": 1}, overwrite=False)
    assert files(tmp_path) == ["out/a.png", "out/a.png.json"]
    assert json.loads((tmp_path / "out" / "a.png.json").read_text()) == {"seed": 1}
    assert oct((tmp_path / "out" / "a.png").stat().st_mode & 0o777) != oct(0o600)  # like any new file


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError, OSError])
def test_a_failed_write_leaves_nothing(tmp_path, error):
    def half(path):
        path.write_bytes(b"half")
        raise error("stop")

    with pytest.raises((error, CliError)):
        commit(tmp_path / "a.mp4", half, {"seed": 1}, overwrite=False)
    assert files(tmp_path) == []


def test_an_output_that_appears_meanwhile_is_kept(tmp_path):
    def sneaky(path):
        (tmp_path / "a.mp4").write_bytes(b"someone else's")
        path.write_bytes(b"mine")

    with pytest.raises(CliError, match="appeared while generating"):
        commit(tmp_path / "a.mp4", sneaky, {}, overwrite=False)
    assert files(tmp_path) == ["a.mp4"] and (tmp_path / "a.mp4").read_bytes() == b"someone else's"


def test_a_failing_ffmpeg_is_an_error_with_its_reason(tmp_path):
    with pytest.raises(OSError, match="ffmpeg failed"):
        write_mp4(tmp_path / "no-such-folder" / "v.mp4", video(), 12)


def test_metadata_json_cuts_the_longest_values_to_fit():
    from nova_cli.writing import metadata_json

    fields = {"prompt": "a fox " * 50_000, "seed": 7, "model": {"id": "BAAI/nova-d48w1024-osp480"}}
    text = metadata_json(fields, 8192)
    assert len(text.encode()) <= 8192
    data = json.loads(text)
    assert data["seed"] == 7 and data["model"] == fields["model"] and "sidecar" in data["truncated"]
    assert data["prompt"].startswith("a fox a fox") and data["prompt"].endswith("…")
    assert len(data["prompt"]) > 7000  # cut to what fits, not to nothing
    assert metadata_json({"prompt": "short"}, 8192) == '{"prompt": "short"}'
    multibyte = json.loads(metadata_json({"prompt": "狐" * 100_000}, 4096))["prompt"]
    assert set(multibyte[:-1]) == {"狐"}


def test_clip_text_cuts_at_a_character_boundary():
    from nova_cli.writing import clip_text

    assert clip_text("abc", 10) == "abc"
    cut = clip_text("é" * 100, 11)
    assert cut == "é" * 4 + "…" and len(cut.encode()) <= 11


def test_check_targets_refuses_folders_and_orphan_sidecars(tmp_path):
    from nova_cli.errors import UsageError
    from nova_cli.writing import check_targets

    out = tmp_path / "a.mp4"
    check_targets([out], overwrite=False, unique=True)
    (tmp_path / "a.mp4.json").mkdir()
    for overwrite in (False, True):
        with pytest.raises(UsageError, match=r"a\.mp4\.json is a folder, where its sidecar would be written"):
            check_targets([out], overwrite=overwrite, unique=True)
    check_targets([out], overwrite=False, unique=False)  # batch renames or refuses the job itself
    (tmp_path / "a.mp4.json").rmdir()
    (tmp_path / "a.mp4.json").write_text("{}")
    with pytest.raises(UsageError, match=r"a\.mp4\.json exists .*--overwrite"):
        check_targets([out], overwrite=False, unique=True)
    check_targets([out], overwrite=True, unique=True)
    with pytest.raises(UsageError, match="the name is too long"):
        check_targets([tmp_path / ("x" * 250 + ".mp4")], overwrite=False, unique=True)
    (tmp_path / "b.png").mkdir()
    with pytest.raises(UsageError, match=r"b\.png is a folder, where the output would be written"):
        check_targets([tmp_path / "b.png"], overwrite=True, unique=True)


def test_commit_reports_a_sidecar_in_the_way_in_one_line(tmp_path):
    (tmp_path / "a.png.json").mkdir()
    with pytest.raises(CliError, match=r"cannot write .*a\.png"):
        commit(tmp_path / "a.png", lambda p: p.write_bytes(b"png"), {}, overwrite=True)
    assert files(tmp_path) == []


def test_temporary_names_carry_the_writer_and_stay_short(tmp_path):
    import os

    from nova_cli.writing import TEMP_NAME, _temp_beside

    temp = _temp_beside(tmp_path / ("x" * 240 + ".mp4"))
    match = TEMP_NAME.match(temp.name)
    assert match and int(match.group("pid")) == os.getpid() and temp.suffix == ".mp4"
    assert len(temp.name) < 150


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from nova_cli.writing import _host_tag, remove_stale_temps

    host = _host_tag()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".fox-s1.nova{_dead_pid()}-{host}-0123abcd.part.mp4",
            "dead sidecar": f".fox-s1.mp4.nova{_dead_pid()}-{host}-0123abce.part.json",
            "alive": f".fox-s2.nova{alive.pid}-{host}-0123abcf.part.mp4",
            "other host, recent": f".fox-s3.nova{_dead_pid()}-ffffff-0123abd0.part.mp4",
            "other host, old": f".fox-s4.nova{_dead_pid()}-ffffff-0123abd1.part.mp4",
            "old naming, old": ".fox-s5.0123abd2.part.mp4",
            "old naming, recent": ".fox-s6.0123abd3.part.mp4",
            "not ours": ".fox-s7.mp4.swp",
            "an output": "fox-s8.mp4",
        }
        if host == "ffffff":
            pytest.skip("this host's tag is the one the test uses for another host")
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        old = time.time() - 7 * 3600
        for key in ("other host, old", "old naming, old"):
            os.utime(tmp_path / names[key], (old, old))
        removed = remove_stale_temps(tmp_path)
        expected = {"dead", "dead sidecar", "other host, old", "old naming, old"}
        assert sorted(p.name for p in removed) == sorted(names[k] for k in expected)
        assert files(tmp_path) == sorted(names[k] for k in names if k not in expected)
    finally:
        alive.kill()
        alive.wait()
    assert remove_stale_temps(tmp_path / "missing") == []


def test_interrupts_are_held_until_the_block_ends():
    import os
    import signal

    from nova_cli.writing import interrupts_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")
    assert steps == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# A nova process whose MP4 write runs until it is stopped: frame 5 announces itself on stderr.
# NOVA_TEST_WAIT=python: each frame waits in Python; =pipe: 8x larger frames and no wait, so nova
# mostly sits in a blocking write to ffmpeg's full pipe when the signal comes.
SLOW_WRITE = """
import os, sys, time
import numpy as np
from nova_cli import writing

real = writing.write_mp4
PIPE = os.environ["NOVA_TEST_WAIT"] == "pipe"

class Endless:
    def __init__(self, frames):
        if PIPE:
            frames = frames.repeat(8, axis=1).repeat(8, axis=2)
        self.frames, self.shape = frames, (10**6, *frames.shape[1:])

    def __iter__(self):
        for i in range(10**6):
            if i == 5:
                print("WRITING", file=sys.stderr, flush=True)
            if not PIPE:
                time.sleep(0.01)
            yield self.frames[i % len(self.frames)]

writing.write_mp4 = lambda path, frames, fps, comment="": real(path, Endless(frames), fps, comment)
from nova_cli.app import main
sys.argv = ["nova", *sys.argv[1:]]
main()
"""


def _start_slow_write(out, tmp_path, wait="python"):
    import subprocess
    import sys

    from tests.nova_cli.conftest import T2V, subprocess_env

    args = ["t2v", "a fox", *T2V, "--frames", "5", "--seed", "1", "-o", f"{out}/"]
    process = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, *map(str, args)], cwd=tmp_path, env=subprocess_env(NOVA_TEST_WAIT=wait), stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    for line in process.stderr:  # the plan line, notes, then WRITING
        lines.append(line)
        if "WRITING" in line:
            return process, lines
    process.wait()
    raise AssertionError("".join(lines))


def _writers_of(folder) -> list[int]:
    """PIDs of processes (ffmpeg) whose command line names ``folder``."""
    from pathlib import Path

    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _wait_until_gone(folder, seconds=30) -> None:
    import time

    deadline = time.monotonic() + seconds
    while _writers_of(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _writers_of(folder)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("wait", ["python", "pipe"])
def test_ctrl_c_while_ffmpeg_writes_leaves_nothing_behind(tmp_path, wait):
    """SIGINT to nova's process group as a terminal sends it (ffmpeg runs in its own session)."""
    import os
    import signal
    import time

    out = tmp_path / "out"
    process, _ = _start_slow_write(out, tmp_path, wait)
    time.sleep(0.3)
    try:
        assert any(name.endswith(".part.mp4") for name in files(out))  # mid-write
        assert _writers_of(out)  # ffmpeg is running
        os.killpg(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=60)
        assert process.returncode == 130, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "nova: error: interrupted" in rest and "Traceback" not in rest
    assert not _writers_of(out)  # the writer was stopped and reaped before nova exited
    time.sleep(0.5)
    assert files(out) == []


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_the_next_run_removes_what_a_killed_run_left(tmp_path, nova):
    import os
    import signal

    from tests.nova_cli.conftest import T2V

    out = tmp_path / "out"
    process, _ = _start_slow_write(out, tmp_path)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    process.stdout.close()
    _wait_until_gone(out)  # ffmpeg sees the end of its input and finishes its file
    left = files(out)
    assert len(left) == 2 and all(".part." in name for name in left)  # nothing cleaned them
    result = nova("t2v", "a fox", *T2V, "--frames", 5, "--seed", 2, "-o", f"{out}/")
    assert result.code == 0, result.err
    assert "removed 2 temporary file(s) an interrupted nova run left in" in result.err
    assert files(out) == ["a-fox-s2.mp4", "a-fox-s2.mp4.json"]
