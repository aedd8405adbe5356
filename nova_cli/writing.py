"""Writing outputs: MP4 (H.264, yuv420p) and PNG, each with its JSON sidecar, atomically.

Every file is written under a temporary name in the target folder and renamed into place, so a
half-written output never exists under its real name: Ctrl-C, a full disk or a crash leave
either nothing or the complete file. The sidecar is renamed first and the media file last, so an
existing output always has its sidecar.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import numpy as np

from .errors import CliError, UsageError
from .naming import sidecar_path

MP4_CRF = 18  # visually lossless H.264; the default of imageio (crf 25) blurs fine texture


def write_mp4(path: Path, frames: np.ndarray, fps: float, comment: str = "") -> None:
    """(F, H, W, 3) uint8 -> H.264 yuv420p MP4 that browsers play (even sizes, faststart)."""
    import imageio_ffmpeg

    count, height, width = frames.shape[:3]
    if width % 2 or height % 2:
        raise CliError(f"cannot write {width}x{height} as yuv420p H.264: sizes must be even")
    params = ["-crf", str(MP4_CRF), "-movflags", "+faststart"]
    if comment:
        params += ["-metadata", f"comment={comment}"]
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=float(fps), codec="libx264", pix_fmt_out="yuv420p",
        quality=None, macro_block_size=2, ffmpeg_log_level="error", output_params=params,
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


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

    Created with mode 0o666 like any new file (the umask applies), not mkstemp's 0o600.
    """
    while True:
        temp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return temp
        except FileExistsError:
            continue


def commit(path: Path, write_media, sidecar: dict, *, overwrite: bool) -> None:
    """Write ``path`` via ``write_media(temp_path)`` and its sidecar, then rename both into place."""
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
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
        if not overwrite and path.exists():
            raise UsageError(f"{path} appeared while generating: pass --overwrite to replace it")
        os.replace(side_tmp, side)
        renamed.append(side)
        os.replace(media_tmp, path)
        renamed.append(path)
    except BaseException:
        for leftover in temps:
            leftover.unlink(missing_ok=True)
        if renamed == [side]:  # the media never arrived: its sidecar goes too
            side.unlink(missing_ok=True)
        raise
