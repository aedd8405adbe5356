"""The command-line options every generating command shares, declared once.

``common_options`` appends them to a command's own parameters (Typer reads the signature) and
hands them to the command as one :class:`Common`. Options left out are None: the presets decide.
"""

from __future__ import annotations

import copy
import inspect
import typing
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

OUTPUT = "Output"
SAMPLING = "Sampling"
MODEL = "Model and device"

def _preset_names(incomplete: str) -> list[str]:
    from .presets import PresetBook

    return [name for name in PresetBook.default().names() if name.startswith(incomplete)]


def _dtypes(incomplete: str) -> list[str]:
    from .settings import DTYPES

    return [name for name in DTYPES if name.startswith(incomplete)]


Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Hub repo id, local folder, preset name, or `demo` (bundled, offline, CPU).",
    rich_help_panel=MODEL)]
Preset = Annotated[Optional[list[str]], typer.Option(
    "--preset", "-p", help="Preset(s) over the command's default; repeat or comma-separate, later wins. "
    "See `nova presets`.", rich_help_panel=MODEL, autocompletion=_preset_names, metavar="NAME")]
Revision = Annotated[Optional[str], typer.Option(
    help="Hub revision (branch, tag or commit hash) of --model.", rich_help_panel=MODEL)]
Device = Annotated[Optional[str], typer.Option(
    help="auto, cpu, cuda, cuda:N or mps (auto: this machine's GPU, else the CPU).", rich_help_panel=MODEL)]
Dtype = Annotated[Optional[str], typer.Option(
    help="auto, float32, float16 or bfloat16 (auto: float16 on GPUs, float32 on the CPU).",
    rich_help_panel=MODEL, autocompletion=_dtypes)]
LowMemory = Annotated[Optional[bool], typer.Option(
    "--low-memory/--no-low-memory", help="Offload idle components to the CPU, decode in tiles.",
    rich_help_panel=MODEL, show_default=False)]
Seed = Annotated[Optional[int], typer.Option(
    help="Random seed (default: a random one, printed and saved in the sidecar).", rich_help_panel=SAMPLING)]
NegativePrompt = Annotated[Optional[str], typer.Option(
    "--negative-prompt", "-n", help="What to steer away from (classifier-free guidance).",
    rich_help_panel=SAMPLING)]
Guidance = Annotated[Optional[float], typer.Option(
    "--guidance", "-g", help="Classifier-free guidance scale (<= 1: off).", rich_help_panel=SAMPLING)]
ArSteps = Annotated[Optional[int], typer.Option(
    help="Set-by-set (masked autoregressive) steps per frame.", rich_help_panel=SAMPLING)]
DiffusionSteps = Annotated[Optional[int], typer.Option(
    help="Denoising steps of the diffusion head per set.", rich_help_panel=SAMPLING)]
Out = Annotated[Optional[str], typer.Option(
    "--out", "-o", help="Output file, or folder (default: here, named from the prompt and seed).",
    rich_help_panel=OUTPUT)]
Json = Annotated[bool, typer.Option(
    "--json", help="Print one JSON object per output (its sidecar plus path) on stdout.",
    rich_help_panel=OUTPUT)]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print only the output paths (nothing on stderr but errors).", rich_help_panel=OUTPUT)]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace existing outputs (never done otherwise).", rich_help_panel=OUTPUT)]

# Command-specific settings, shared by the command and `nova batch`.
Num = Annotated[Optional[int], typer.Option(
    "--num", help="Images to make; image i uses seed + i.", rich_help_panel=SAMPLING)]
Frames = Annotated[Optional[int], typer.Option(
    help="Video frames, 1 + 4k (17, 29, 33 ...). Trained at 33.", rich_help_panel=SAMPLING)]
Flow = Annotated[Optional[float], typer.Option(
    help="Motion flow: how much the video moves, 0..20 (training clips ~0..10).", rich_help_panel=SAMPLING)]
FlowOrAuto = Annotated[Optional[str], typer.Option(
    "--flow", help="Motion flow 0..20, or 'auto': measure the input clip's.", rich_help_panel=SAMPLING)]
Fps = Annotated[Optional[float], typer.Option(
    help="Playback rate of the MP4 (the model's motion is at 12 fps).", rich_help_panel=OUTPUT)]
Steps = Annotated[Optional[int], typer.Option(
    "--steps", help="Extension rounds; each adds --chunk latent frames (4 video frames each).",
    rich_help_panel=SAMPLING)]
Chunk = Annotated[Optional[str], typer.Option(
    "--chunk", help="New latent frames per round, or auto: half the --frames window.",
    rich_help_panel=SAMPLING)]

SHARED = {
    "model": (Model, None), "preset": (Preset, None), "revision": (Revision, None), "device": (Device, None),
    "dtype": (Dtype, None), "low_memory": (LowMemory, None), "seed": (Seed, None),
    "negative_prompt": (NegativePrompt, None), "guidance": (Guidance, None), "ar_steps": (ArSteps, None),
    "diffusion_steps": (DiffusionSteps, None), "out": (Out, None), "as_json": (Json, False),
    "quiet": (Quiet, False), "overwrite": (Overwrite, False),
}
OUTPUT_ONLY = ("out", "as_json", "quiet", "overwrite")


@dataclass(frozen=True)
class Common:
    """The shared options of one command line: settings for the presets to fill in, and output handling."""

    settings: dict  # setting name -> value or None (not given)
    out: str | None
    as_json: bool
    quiet: bool
    overwrite: bool


def common_options(func):
    """Add the shared options to a command; the command receives them as ``common: Common``."""
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "common"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
              for name, (kind, default) in SHARED.items()]

    def command(**kwargs):
        values = {name: kwargs.pop(name) for name in SHARED}
        common = Common({k: v for k, v in values.items() if k not in OUTPUT_ONLY}, values["out"],
                        values["as_json"], values["quiet"], values["overwrite"])
        return func(**kwargs, common=common)

    command.__name__, command.__doc__, command.__module__ = func.__name__, func.__doc__, func.__module__
    command.__signature__ = inspect.Signature(own + shared)
    return command


def show_preset_defaults(command, name: str, fixed: dict | None = None) -> None:
    """Write each setting's effective default into its help, with the preset that sets it.

    The defaults live in presets (a user file may replace a bundled one), so they are read when the
    commands are registered; ``fixed`` holds defaults the command itself sets (extend's flow).
    """
    from .presets import effective_defaults
    from .settings import base_preset

    defaults = effective_defaults(name)
    texts = {key: f"{_shown(value)} (preset {preset})" if preset else _shown(value)
             for key, (value, preset) in defaults.items()}
    texts |= {key: _shown(value) for key, value in (fixed or {}).items()}
    texts["preset"] = f"none on top of {base_preset(name)}"
    show_defaults(command, texts)


def show_defaults(command, texts: dict[str, str]) -> None:
    """Append ``[default: TEXT]`` to the help of each option named in ``texts``, for defaults that the
    signature cannot hold (None there means "not given", and something else decides)."""
    params = []
    for param in inspect.signature(command).parameters.values():
        if param.name in texts:
            suffix = f" \\[default: {texts[param.name]}]"
            if typing.get_origin(param.annotation) is Annotated:
                kind, info = typing.get_args(param.annotation)[:2]
                info = copy.copy(info)
                info.help = (info.help or "") + suffix
                param = param.replace(annotation=Annotated[kind, info])
            elif isinstance(param.default, typer.models.OptionInfo):
                info = copy.copy(param.default)
                info.help = (info.help or "") + suffix
                param = param.replace(default=info)
        params.append(param)
    command.__signature__ = inspect.signature(command).replace(parameters=params)


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
