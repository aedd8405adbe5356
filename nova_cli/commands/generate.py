"""nova t2i, t2v, i2v and extend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import options as o

Prompt = Annotated[str, typer.Argument(help="What to generate; long, descriptive prompts work best.",
                                       show_default=False)]
OptionalPrompt = Annotated[Optional[str], typer.Option(
    "--prompt", help="What happens next; describe the motion.", rich_help_panel=o.SAMPLING)]


@o.common_options
def t2i(prompt: Prompt, num: o.Num = None, *, common: o.Common):
    """Text to image: PNG(s) with a JSON sidecar each."""
    run_command("t2i", prompt, None, common, num=num)


@o.common_options
def t2v(prompt: Prompt, frames: o.Frames = None, flow: o.Flow = None, fps: o.Fps = None, *, common: o.Common):
    """Text to video: an MP4 of 1 + 4k frames (33 by default) at 12 fps."""
    run_command("t2v", prompt, None, common, frames=frames, flow=flow, fps=fps)


@o.common_options
def i2v(image: Annotated[Path, typer.Argument(help="The first frame (any size: center-cropped and resized).",
                                              show_default=False)],
        prompt: OptionalPrompt = None, frames: o.Frames = None, flow: o.Flow = None, fps: o.Fps = None, *,
        common: o.Common):
    """Image to video: an MP4 whose first frame is IMAGE."""
    run_command("i2v", prompt, image, common, frames=frames, flow=flow, fps=fps)


@o.common_options
def extend(clip: Annotated[Path, typer.Argument(help="The clip to continue (any size and frame rate).",
                                                show_default=False)],
           prompt: OptionalPrompt = None, steps: o.Steps = None, chunk: o.Chunk = None,
           flow: o.FlowOrAuto = None, frames: o.Frames = None, fps: o.Fps = None, *, common: o.Common):
    """Extend a clip: an MP4 of CLIP followed by --steps rounds of new frames.

    --frames is the window the model sees each round (context + new, default 33); the last frames
    of the clip pre-fill the KV cache. --flow defaults to auto: the clip's own measured motion.
    """
    run_command("extend", prompt, clip, common, steps=steps, chunk=chunk, flow=flow or "auto", frames=frames,
                fps=fps)


def run_command(*args, **kwargs):
    """Imported on use: numpy, torch and the rest load only when a command runs, not for --help."""
    from ..runner import run_command as run

    return run(*args, **kwargs)


def register(app: typer.Typer) -> None:
    for command in (t2i, t2v, i2v, extend):
        o.show_preset_defaults(command, command.__name__, {"flow": "auto"} if command is extend else None)
        app.command(command.__name__)(command)
