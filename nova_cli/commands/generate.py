"""nova t2i, t2v, i2v and extend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import options as o

Prompt = Annotated[Optional[str], typer.Argument(
    help="What to generate; long, descriptive prompts work best (optional with --from).", show_default=False,
    metavar="PROMPT")]
OptionalPrompt = Annotated[Optional[str], typer.Option(
    "--prompt", help="What happens next; describe the motion.", rich_help_panel=o.SAMPLING)]
From = Annotated[Optional[Path], typer.Option(
    "--from", help="Re-run an output from its sidecar (OUTPUT.json): its prompt, seed, model, revision, "
    "settings and input; options given here override them.", rich_help_panel=o.OUTPUT, show_default=False)]
Num = Annotated[Optional[int], typer.Option(
    "--num", help="Videos to make; video i uses seed + i.", rich_help_panel=o.SAMPLING)]


@o.common_options
def t2i(ctx: typer.Context, prompt: Prompt = None, num: o.Num = None, rerun: From = None, *, common: o.Common):
    """Text to image: PNG(s) with a JSON sidecar each."""
    _needs(ctx, "prompt", prompt, rerun)
    run_command("t2i", prompt, None, common, rerun=rerun, num=num)


@o.common_options
def t2v(ctx: typer.Context, prompt: Prompt = None, num: Num = None, frames: o.Frames = None, flow: o.Flow = None,
        fps: o.Fps = None, rerun: From = None, *, common: o.Common):
    """Text to video: MP4(s) of 1 + 4k frames (33 by default) at 12 fps.

    Offline, in seconds on a CPU, with the bundled demo model:

    nova t2v "a red circle moving right on a black background" --model demo
    """
    _needs(ctx, "prompt", prompt, rerun)
    run_command("t2v", prompt, None, common, rerun=rerun, num=num, frames=frames, flow=flow, fps=fps)


@o.common_options
def i2v(ctx: typer.Context,
        image: Annotated[Optional[Path], typer.Argument(
            help="The first frame (any size: center-cropped and resized; optional with --from).",
            show_default=False, metavar="IMAGE")] = None,
        prompt: OptionalPrompt = None, num: Num = None, frames: o.Frames = None, flow: o.Flow = None,
        fps: o.Fps = None, rerun: From = None, *, common: o.Common):
    """Image to video: MP4(s) whose first frame is IMAGE."""
    _needs(ctx, "image", image, rerun)
    run_command("i2v", prompt, image, common, rerun=rerun, num=num, frames=frames, flow=flow, fps=fps)


@o.common_options
def extend(ctx: typer.Context,
           clip: Annotated[Optional[Path], typer.Argument(
               help="The clip to continue (any size and frame rate; optional with --from).",
               show_default=False, metavar="CLIP")] = None,
           prompt: OptionalPrompt = None, steps: o.Steps = None, chunk: o.Chunk = None,
           flow: o.FlowOrAuto = None, frames: o.Frames = None, fps: o.Fps = None, rerun: From = None, *,
           common: o.Common):
    """Extend a clip: an MP4 of CLIP followed by --steps rounds of new frames.

    --frames is the window the model sees each round (context + new, default 33); the last frames
    of the clip pre-fill the KV cache. --flow defaults to auto: the clip's own measured motion.
    """
    _needs(ctx, "clip", clip, rerun)
    run_command("extend", prompt, clip, common, rerun=rerun, steps=steps, chunk=chunk, flow=flow, frames=frames,
                fps=fps)


def _needs(ctx: typer.Context, name: str, value, rerun) -> None:
    """The argument is required unless ``--from`` supplies it: click's own "Missing argument" error."""
    if value is None and rerun is None:
        import sys

        exceptions = sys.modules[typer.BadParameter.__module__]
        param = next(p for p in ctx.command.params if p.name == name)
        raise exceptions.MissingParameter(ctx=ctx, param=param)


def run_command(*args, **kwargs):
    """Imported on use: numpy, torch and the rest load only when a command runs, not for --help."""
    from ..runner import run_command as run

    return run(*args, **kwargs)


def register(app: typer.Typer) -> None:
    for command in (t2i, t2v, i2v, extend):
        o.show_preset_defaults(command, command.__name__, {"flow": "auto"} if command is extend else None)
        app.command(command.__name__)(command)
