"""Writing outputs: MP4 (H.264, yuv420p) and PNG, each with its JSON sidecar, atomically.

Every file is written under a temporary name in the target folder and renamed into place, so a
half-written output never exists under its real name: Ctrl-C, a full disk or a crash leave
either nothing or the complete file. The sidecar is renamed first and the media file last, so an
existing output always has its sidecar. A run killed outright (SIGKILL) cannot clean up: the
temporary names carry the writer's PID, and the next run into the folder removes what it left.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import CliError, UsageError
from .naming import sidecar_path

MP4_CRF = 18  # visually lossless H.264; the default of imageio (crf 25) blurs fine texture
MP4_TAG_BYTES = 8 * 1024  # the MP4 comment tag: prompt, seed, model (whole in the sidecar)
PNG_TEXT_BYTES = 64 * 1024  # each PNG text chunk (Pillow reads at most 1 MiB per chunk)
MAX_TEMP_STEM = 100  # a long output name must not make its temporary name too long for the file system
STALE_AFTER_S = 6 * 3600  # a temporary file this old belongs to no running write
# .<stem>.nova<pid>-<host>-<random>.part<suffix>; the older .<stem>.<random>.part<suffix> has no owner
TEMP_NAME = re.compile(r"^\..+\.(?:nova(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-)?[0-9a-f]{8}\.part(?:\.[^.]+)?$")


def write_mp4(path: Path, frames: np.ndarray, fps: float, comment: str = "") -> None:
    """(F, H, W, 3) uint8 -> H.264 yuv420p MP4 that browsers play (even sizes, faststart).

    ffmpeg runs as our own child in its own session (a Ctrl-C in the terminal reaches nova, not it);
    when anything stops the write, ffmpeg is killed and reaped before the caller removes the file, so
    it cannot recreate it afterwards. ``comment`` goes on ffmpeg's command line: keep it short
    (:func:`metadata_json`).
    """
    import imageio_ffmpeg

    count, height, width = frames.shape[:3]
    if width % 2 or height % 2:
        raise CliError(f"cannot write {width}x{height} as yuv420p H.264: sizes must be even")
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-v", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-r", str(Fraction(float(fps)).limit_denominator(1001)), "-i", "-", "-an",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(MP4_CRF), "-movflags", "+faststart",
        *(["-metadata", f"comment={comment}"] if comment else []), str(path),
    ]
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: ffmpeg can never block on it
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)
        try:
            try:
                for frame in frames:
                    process.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).data)
                process.stdin.close()
            except BrokenPipeError:  # ffmpeg stopped early: its exit code and log say why
                pass
            code = process.wait()
        except BaseException:
            stop_process(process)
            raise
        finally:
            _close_quietly(process.stdin)
        if code != 0:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            raise OSError(f"ffmpeg failed ({lines[-1] if lines else f'exit code {code}'})")


def stop_process(process: subprocess.Popen) -> None:
    """Kill and reap ``process``; a second Ctrl-C meanwhile waits until it is gone."""
    with interrupts_deferred():
        if process.poll() is None:
            process.kill()
        process.wait()


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except OSError:  # the pipe is broken: ffmpeg is gone already
        pass


@contextmanager
def interrupts_deferred():
    """Hold Ctrl-C (SIGINT) until the block has run: clean-up that must finish is not cut short.

    The held signal is delivered when the block ends (as KeyboardInterrupt with Python's handler).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            if callable(previous):
                previous(signal.SIGINT, held[0])
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


def clip_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, marked with '…' where it was cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: max(0, limit - 3)].decode("utf-8", errors="ignore") + "…"


def metadata_json(fields: dict, limit: int) -> str:
    """``fields`` as JSON of at most ``limit`` UTF-8 bytes, for a tag or a text chunk.

    A huge prompt cannot go whole into an MP4 tag (ffmpeg's command line takes at most 128 KiB per
    argument) nor a PNG text chunk (Pillow refuses to read chunks over 1 MiB): the longest strings are
    cut until it fits, and ``truncated`` says where the whole values are (the sidecar).
    """
    text = json.dumps(fields, ensure_ascii=False)
    if len(text.encode("utf-8")) <= limit:
        return text
    fields = {**fields, "truncated": "long values are cut here; the sidecar .json has them whole"}
    low, high = 0, max(_longest_string(fields), 1)
    while low < high:  # the longest cut (characters per string) that still fits
        middle = (low + high + 1) // 2
        if len(json.dumps(_cut_strings(fields, middle), ensure_ascii=False).encode("utf-8")) <= limit:
            low = middle
        else:
            high = middle - 1
    return json.dumps(_cut_strings(fields, low), ensure_ascii=False)


def _cut_strings(value, length: int):
    if isinstance(value, str):
        return value if len(value) <= max(length, 64) else value[:length] + "…"
    if isinstance(value, dict):
        return {k: v if k == "truncated" else _cut_strings(v, length) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v, length) for v in value]
    return value


def _longest_string(value) -> int:
    if isinstance(value, str):
        return len(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((_longest_string(v) for v in items), default=0)


def write_png(path: Path, image: np.ndarray, text: dict[str, str]) -> None:
    """(H, W, 3) uint8 -> PNG with text chunks (``Description``, ``Software``, ``nova`` = sidecar)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    Image.fromarray(image).save(path, format="PNG", pnginfo=info)


def _temp_beside(path: Path) -> Path:
    """A new empty file in the target folder, keeping the suffix (ffmpeg picks the format by it).

    The name says which process writes it (:data:`TEMP_NAME`), so a later run can tell a temporary
    file of a killed run from one being written now. Created with mode 0o666 like any new file (the
    umask applies), not mkstemp's 0o600.
    """
    while True:
        owner = f"nova{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}"
        temp = path.with_name(f".{path.stem[:MAX_TEMP_STEM]}.{owner}.part{path.suffix}")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue


def _host_tag() -> str:
    """6 hex digits of the host name: a PID means something only on the machine that wrote it."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # a zombie (killed, not yet reaped by its parent) writes nothing any more
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def remove_stale_temps(folder: Path, *, now: float | None = None) -> list[Path]:
    """Remove the temporary files of :func:`commit` that a killed run (SIGKILL, power loss) left in
    ``folder``: those whose writer on this machine is no longer running, and any older than
    :data:`STALE_AFTER_S` (a write takes seconds to minutes). Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet: nothing to clean
        return removed
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        pid, host = match.group("pid"), match.group("host")
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        dead = pid is not None and host == _host_tag() and int(pid) != os.getpid() and not _process_alive(int(pid))
        if dead or age > STALE_AFTER_S:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                continue
    return removed


def remove_stale_temps_of(outputs) -> list[str]:
    """:func:`remove_stale_temps` in the folders of ``outputs``: one line per folder that had some."""
    lines = []
    for folder in dict.fromkeys(Path(p).parent for p in outputs):
        removed = remove_stale_temps(folder)
        if removed:
            names = ", ".join(p.name for p in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
            lines.append(f"removed {len(removed)} temporary file(s) an interrupted nova run left in {folder}: {names}")
    return lines


def check_targets(paths, *, overwrite: bool, unique: bool) -> None:
    """Before any heavy work: every output and its sidecar can be written where it is planned.

    On a command line (``unique``) a folder in the way is always an error, and an existing sidecar
    of an explicitly named output too, unless ``--overwrite``. Batch (not ``unique``) decides about
    its existing outputs and folders itself, after naming its jobs (``batch._refuse_folders``).
    """
    for path in paths:
        side = sidecar_path(path)
        if len(side.name.encode()) > _name_max(path.parent):
            raise UsageError(f"{path.name}: the name is too long for the file system (with its sidecar's .json):"
                             " choose a shorter --out")
        for target, what in ((path, "the output"), (side, "its sidecar")) if unique else ():
            if target.is_dir():
                raise UsageError(f"{target} is a folder, where {what} would be written: choose another --out")
        if unique and not overwrite and side.exists() and not path.exists():
            raise UsageError(f"{side} exists (a sidecar without its output): pass --overwrite to replace it,"
                             " or choose another --out")


def _name_max(folder: Path) -> int:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def commit(path: Path, write_media, sidecar: dict, *, overwrite: bool) -> None:
    """Write ``path`` via ``write_media(temp_path)`` and its sidecar, then rename both into place.

    Whatever stops it (an error, Ctrl-C, a full disk), the temporary files are removed and nothing
    is left under the real names; the clean-up itself is not cut short by a second Ctrl-C.
    """
    side = sidecar_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output folder {path.parent}: {exc.strerror or exc}") from None
    temps: list[Path] = []
    renamed: list[Path] = []
    try:
        try:
            media_tmp = _temp_beside(path)
            temps.append(media_tmp)
            side_tmp = _temp_beside(side)
            temps.append(side_tmp)
            write_media(media_tmp)
            side_tmp.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            if not overwrite and path.exists():  # (sidecars were checked when planning: check_targets)
                raise UsageError(f"{path} appeared while generating: pass --overwrite to replace it")
            os.replace(side_tmp, side)
            renamed.append(side)
            os.replace(media_tmp, path)
            renamed.append(path)
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with interrupts_deferred():
            for leftover in temps:
                leftover.unlink(missing_ok=True)
            if renamed == [side]:  # the media never arrived: its sidecar goes too
                side.unlink(missing_ok=True)
        raise
