"""``nova prepare``: a folder of captioned videos and images -> a training cache for ``nova train``.

Each item is center-cropped and resized to the checkpoint's frame size; a video gives one clip
of ``--frames`` (1 + 4k) frames taken every ``--stride`` source frames from its start, its motion
flow measured as ``nova flow`` does; then the VAE encodes it to latent moments. Files that cannot
be used are reported and skipped; an interrupted run continues where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import typer

from .errors import CliError, Interrupted, MediaError, UsageError

TARGET_FPS = 12  # the video checkpoint's frame rate (its fps token always says 12)


@dataclass
class Entry:
    """One file to cache: ``source`` is how the index names it (relative path or manifest entry)."""

    source: str
    path: Path
    caption: str | None
    problem: str | None = None  # why it cannot be used, found while listing


class Skip(Exception):
    """This item cannot be cached; the message says why (one line)."""


def check_frames(frames: int) -> None:
    if frames < 1 or (frames - 1) % 4:
        low = max(1, 1 + 4 * ((frames - 1) // 4))
        raise UsageError(f"--frames must be 1 + 4k (the VAE compresses time 4x): {frames} is not; "
                         f"nearest valid counts: {low} or {low + 4}")


def parse_stride(value: str) -> int | None:
    """None for "auto" (nearest to 12 fps), else a whole number >= 1."""
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"--stride must be 'auto' or a whole number >= 1, got {value!r}")
    return int(value)


def list_folder(folder: Path, exclude: Path) -> list[Entry]:
    """Media files below ``folder`` (sorted), each with the caption in the .txt beside it."""
    from .media import IMAGE_SUFFIXES, VIDEO_SUFFIXES  # media imports numpy: keep `nova --help` light

    entries = []
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES or path.name.startswith("."):
            continue
        if exclude in path.parents:
            continue
        source = str(path.relative_to(folder))
        caption_file = path.with_suffix(".txt")
        if not caption_file.is_file():
            entries.append(Entry(source, path, None, f"no caption: expected {caption_file.name} beside it"))
            continue
        try:
            caption = caption_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            entries.append(Entry(source, path, None, f"caption {caption_file.name} unreadable ({type(exc).__name__})"))
            continue
        entries.append(Entry(source, path, caption))
    return entries


def list_manifest(manifest: Path) -> list[Entry]:
    """JSONL lines {"path": ..., "caption": ...}; relative paths are relative to the manifest."""
    entries = []
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{manifest}: unreadable manifest ({type(exc).__name__})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{manifest.name} line {number}"
        try:
            record = json.loads(line)
            path, caption = record["path"], record["caption"]
            if not isinstance(path, str) or not isinstance(caption, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            entries.append(Entry(where, manifest, None, 'expected {"path": "...", "caption": "..."}'))
            continue
        full = Path(path) if Path(path).is_absolute() else manifest.parent / path
        entries.append(Entry(path, full, caption.strip()))
    return entries


def clip_of(entry: Entry, encoder, frames: int, stride: int | None):
    """-> (uint8 frames at the model's size, metadata) for one entry, or raise Skip/MediaError."""
    from .media import IMAGE_SUFFIXES, fit_to_size, measure_motion_flow, read_image, read_video_head

    size = encoder.geometry.pixel_size
    if entry.path.suffix.lower() in IMAGE_SUFFIXES - {".gif"}:
        image, _ = fit_to_size(read_image(entry.path), size)
        return image[None], {"kind": "image", "frames": 1, "stride": 1, "fps": None, "motion_flow": 0.0}
    if not encoder.is_video:
        raise Skip(f"a video, but {encoder.name} is an image checkpoint")

    def step(fps: float) -> int:
        return stride or max(1, round(fps / TARGET_FPS))

    video, fps = read_video_head(entry.path, lambda fps: step(fps) * (frames - 1) + 1)
    every = step(fps)
    needed = every * (frames - 1) + 1
    if len(video) < needed:
        raise Skip(f"too short: {len(video)} frames, a {frames}-frame clip at stride {every} needs {needed}")
    flow = measure_motion_flow(video[:needed], fps, size)
    clip, _ = fit_to_size(video[:needed:every], size)
    return clip, {"kind": "video", "frames": frames, "stride": every, "fps": fps, "motion_flow": flow}


def prepare(
    source: Path = typer.Argument(..., help="Folder of videos/images with a caption .txt beside each, or a JSONL "
                                            "manifest of {\"path\", \"caption\"} lines."),
    output: Path = typer.Argument(..., help="Cache folder to write (an existing one is continued)."),
    model: str = typer.Option(..., "--model", "-m", help="The checkpoint to train: folder or Hub repo id."),
    revision: str = typer.Option(None, "--revision", help="Hub revision of --model."),
    frames: int = typer.Option(33, "--frames", help="Frames per video clip, 1 + 4k (33 -> 9 latent frames)."),
    stride: str = typer.Option("auto", "--stride", help="Use every n-th source frame; auto: closest to 12 fps."),
    text_embeddings: bool = typer.Option(False, "--text-embeddings",
                                         help="Also store each caption's Phi embedding (training then skips Phi)."),
    shard_size: int = typer.Option(64, "--shard-size", min=1, help="Items per shard file."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
):
    """Encode captioned videos and images into a training cache (latent moments, captions, motion flow)."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from nova_core import hub
    from nova_core.training.cache import CacheWriter
    from nova_core.training.encode import Encoder

    check_frames(frames)
    every = parse_stride(stride)
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output}: is a file; the cache needs a folder")
    if source.is_dir():
        entries = list_folder(source, output.resolve())
    elif source.is_file() and source.suffix.lower() == ".jsonl":
        entries = list_manifest(source)
    else:
        raise UsageError(f"{source}: not a folder or a .jsonl manifest")
    if not entries:
        raise UsageError(f"{source}: no videos or images found")

    target = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    folder = hub.resolve(model, revision=revision).folder
    encoder = Encoder.load(model, folder, target, text_embeddings)
    settings = {"frames": frames, "stride": stride, "text_embeddings": text_embeddings}
    writer = CacheWriter(output, encoder.header(settings), shard_size)
    done = writer.done
    todo = [e for e in entries if e.source not in done]
    console = Console(stderr=True, soft_wrap=True)  # a reported path is never split over lines
    if len(todo) < len(entries):
        console.print(f"{output}: {len(entries) - len(todo)} of {len(entries)} items already cached, continuing")
    bars = Progress(TextColumn("prepare"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[name]}"), console=console, transient=True)
    try:
        with bars:
            task = bars.add_task("prepare", total=len(todo), name="")
            for entry in todo:
                bars.update(task, name=entry.source)
                _cache_one(entry, encoder, writer, frames, every)
                bars.advance(task)
    except KeyboardInterrupt:
        writer.flush()
        raise Interrupted(f"interrupted: {len(writer.items)} items are cached in {output}; "
                          f"run the same command to continue") from None
    writer.flush()
    for skipped in writer.skipped:
        console.print(f"skipped {skipped['source']}: {skipped['reason']}", markup=False, highlight=False)
    if not writer.items:
        raise CliError(f"nothing could be cached in {output} ({len(writer.skipped)} files skipped)")
    added = len(todo) - len(writer.skipped)
    console.print(f"cached {added} new items, {len(writer.items)} in total, in {output}"
                  + (f"; skipped {len(writer.skipped)} (listed above and in index.json)" if writer.skipped else ""))


def _cache_one(entry: Entry, encoder, writer, frames: int, stride: int | None) -> None:
    if entry.problem:
        writer.skip(entry.source, entry.problem)
        return
    if not entry.caption:
        writer.skip(entry.source, "empty caption")
        return
    try:
        clip, meta = clip_of(entry, encoder, frames, stride)
    except (Skip, MediaError) as exc:
        writer.skip(entry.source, str(exc).removeprefix(f"{entry.path}: "))
        return
    tensors = encoder.moments(clip)
    if encoder.tokenizer is not None:
        tensors["text"] = encoder.caption_rows(entry.caption)
    meta.update(source=entry.source, caption=entry.caption, latent_frames=int(tensors["mean"].size(1)))
    writer.add(meta, tensors)


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare)
