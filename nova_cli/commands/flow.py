"""nova flow: a clip's motion flow, the number NOVA's video checkpoint is conditioned on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..report import Reporter

DEFAULT_SIZE = (480, 768)  # the video checkpoint's frame size (H, W): where training flows were measured


def flow(
    clip: Annotated[Path, typer.Argument(help="A video file (at least 2 frames at 12 fps).", show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Measure at this checkpoint's frame size (default 768x480).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Measure a clip's motion flow (OpenCV corners + Lucas-Kanade, at 12 fps and the model's size).

    What it prints is a value --flow accepts: a measurement above 20 is clamped to 20, with a note.
    """
    from nova_core.motion_flow import TRAINING_FPS

    from .. import media
    from ..errors import MediaError
    from ..settings import usable_flow

    frames, fps = media.read_video(clip)  # the input first: a bad clip is reported before an uncached model
    if len(media.resample_fps(frames, fps, TRAINING_FPS)) < 2:
        what = "a still image" if len(frames) == 1 else f"{len(frames)} frames at {fps:g} fps"
        raise MediaError(f"{clip}: {what}, not a clip: motion flow needs at least 2 frames at {TRAINING_FPS} fps")
    size = DEFAULT_SIZE
    if model:
        from ..runtime import inspect_checkpoint

        size = inspect_checkpoint(model).pixel_size
    measured = media.measure_motion_flow(frames, fps, size)
    value, note = usable_flow(measured)
    reporter = Reporter(quiet=as_json)
    if note:
        reporter.warn(note)
    if as_json:
        print(json.dumps({"path": str(clip), "flow": round(value, 3), "measured": round(measured, 3),
                          "frames": len(frames), "fps": fps,
                          "measured_at": {"fps": TRAINING_FPS, "width": size[1], "height": size[0]}}))
        return
    reporter.note(f"{clip}: {len(frames)} frames at {fps:g} fps, measured at 12 fps and {size[1]}x{size[0]}"
                  " (training clips ~0..10; pass it as --flow)")
    print(f"{value:.2f}")


def register(app: typer.Typer) -> None:
    app.command("flow")(flow)
