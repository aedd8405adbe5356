"""Reading images and clips, and fitting them to a checkpoint's frame size and rate."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from .errors import MediaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a file")
    return path


BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white (README: Outputs)


def probe_image(path) -> tuple[int, int]:
    """(width, height) from the header only: a missing, unreadable or absurdly large image fails here,
    before any model is resolved or loaded."""
    return _open_image(path, lambda image: image.size)


def read_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3), EXIF rotation applied, every Pillow mode scaled to 8 bits, alpha composited
    on :data:`BACKGROUND`."""
    from PIL import ImageOps

    return _open_image(path, lambda image: to_rgb8(ImageOps.exif_transpose(image)))


def _open_image(path, use):
    from PIL import Image

    path = _existing(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # below the limit: just big
            with Image.open(path) as image:
                return use(image)
    except Image.DecompressionBombError as exc:  # Image.open refuses more than twice MAX_IMAGE_PIXELS
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(pixels.group(1)):,} pixels)" if pixels else ""
        raise MediaError(f"{path}: the image is too large{size}: nova reads at most "
                         f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels (a guard against decompression bombs);"
                         " downscale it first") from None
    except MemoryError:
        raise MediaError(f"{path}: not enough memory to decode the image") from None
    except MediaError:
        raise
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, struct.error ...) on bad data
        raise MediaError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def to_rgb8(image) -> np.ndarray:
    """Any Pillow image -> RGB uint8 (H, W, 3).

    ``convert("RGB")`` clips high-bit modes (a 16-bit grayscale PNG becomes white) and drops alpha
    (transparent pixels then show whatever colour hides under them), so: 16-bit modes are scaled by
    1/257; ``I`` (32-bit integers) likewise when its values fit 16 bits (as-is when they fit 8),
    otherwise stretched from its minimum to its maximum; ``F`` is taken as 0..1 when it fits there,
    else stretched; alpha, palette transparency included, is composited on :data:`BACKGROUND`.
    """
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_8bit(np.asarray(image).astype(np.float64), mode)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "La":  # premultiplied luminance + alpha: Pillow converts it to LA only
        image, mode = image.convert("LA"), "LA"
    if mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _scale_to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and 255 < high <= 65535):
        scaled = values / 257
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def probe_video(path) -> None:
    """Fails, as :func:`read_video` would, unless the file decodes to at least one frame (one frame is read)."""
    read_video_head(path, 1)


def read_video(path) -> tuple[np.ndarray, float]:
    """All frames as RGB uint8 (N, H, W, 3) and the clip's frame rate, through imageio-ffmpeg."""
    return read_video_head(path, None)


def read_video_head(path, max_frames) -> tuple[np.ndarray, float]:
    """Like :func:`read_video`, but stops after ``max_frames`` frames, so a long file is never
    decoded whole. ``max_frames`` may be a function of the clip's frame rate; None reads all."""
    import imageio_ffmpeg

    path = _existing(path)
    reader = None
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        fps = float(meta.get("fps") or 0) or 12.0
        limit = max_frames(fps) if callable(max_frames) else max_frames
        frames = []
        for f in reader:
            frames.append(np.frombuffer(f, np.uint8).reshape(height, width, 3))
            if limit is not None and len(frames) >= limit:
                break
    except (RuntimeError, OSError, StopIteration, KeyError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc.__class__.__name__})") from None
    finally:
        if reader is not None:
            reader.close()  # stops ffmpeg when we leave early
    if not frames:
        raise MediaError(f"{path}: the video has no frames")
    return np.stack(frames), fps


def resample_fps(frames: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Nearest frames at ``target_fps`` (drops or repeats frames; keeps the first one)."""
    if abs(fps - target_fps) < 1e-3:
        return frames
    count = max(1, int(np.floor((len(frames) - 1) * target_fps / fps)) + 1)
    index = np.minimum(np.round(np.arange(count) * fps / target_fps).astype(int), len(frames) - 1)
    return frames[index]


def fit_to_size(frames: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """Center-crop to the target aspect, then resize. (N, H, W, 3) or (H, W, 3) -> same at ``size``.

    Returns the frames and a sentence saying what was done (None when nothing was needed).
    """
    from PIL import Image

    single = frames.ndim == 3
    frames = frames[None] if single else frames
    height, width = frames.shape[1:3]
    target_h, target_w = size
    if (height, width) == (target_h, target_w):
        return (frames[0] if single else frames), None
    scale = max(target_h / height, target_w / width)
    crop_h, crop_w = min(height, round(target_h / scale)), min(width, round(target_w / scale))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    out = np.stack([
        np.asarray(Image.fromarray(f[top : top + crop_h, left : left + crop_w]).resize(
            (target_w, target_h), Image.Resampling.LANCZOS))
        for f in frames
    ])
    note = f"center-cropped {width}x{height} to {crop_w}x{crop_h} and resized to {target_w}x{target_h}"
    return (out[0] if single else out), note


def measure_motion_flow(frames: np.ndarray, fps: float, size: tuple[int, int]) -> float:
    """A clip's motion flow as NOVA's training data was measured: at 12 fps and the model's size.

    The one definition used by ``nova flow``, ``nova extend --flow auto`` and ``nova prepare``.
    """
    from nova_core.motion_flow import TRAINING_FPS, clip_flow

    frames, _ = fit_to_size(resample_fps(frames, fps, TRAINING_FPS), size)
    return clip_flow(frames)
