"""Every generation setting: its type, its valid values, and how presets and flags combine.

Presets, command-line flags and batch job lines all go through the same checks, so a bad value
gets the same one-line message wherever it was written; only the ``source`` in it differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UsageError

VIDEO_FRAME_STEP = 4  # the video VAE: 1 latent frame for frame 0, then 1 per 4 frames
FLOW_RANGE = (0.0, 20.0)  # training clips measure ~0..10 (nova_core.motion_flow)
DTYPES = ("auto", "float32", "float16", "bfloat16")
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
# Bounds that keep a typo from allocating until the machine dies (checked before anything runs).
MAX_NUM = 1000  # outputs of one command line (a batch file for more)
TRAINED_FRAMES = 33  # the video checkpoint's training length (9 latent frames)
MAX_FRAMES = 1 + VIDEO_FRAME_STEP * 128  # 513 frames, ~43 s at 12 fps: 16x the trained length
MAX_STEPS = 250  # extend rounds: 4000 new frames (~5.5 min at 12 fps) in the default window
IMAGE_COMMANDS = ("t2i",)
VIDEO_COMMANDS = ("t2v", "i2v", "extend")
COMMANDS = IMAGE_COMMANDS + VIDEO_COMMANDS


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected a whole number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if not number.is_integer():
        raise ValueError("expected a whole number")
    return int(number)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def at_least(low: int, high: int | None = None, why: str = "") -> Callable[[Any], int]:
    def check(value):
        number = _integer(value)
        if number < low:
            raise ValueError(f"must be {low} or more")
        if high is not None and number > high:
            raise ValueError(f"must be {low}..{high}{why}")
        return number
    return check


def valid_frames(value) -> int:
    """1 + 4k frames, k >= 1; otherwise name the nearest valid counts."""
    count = _integer(value)
    if count > MAX_FRAMES:
        raise ValueError(f"at most {MAX_FRAMES} frames (the checkpoint was trained on {TRAINED_FRAMES}); for longer"
                         " videos use nova extend, which slides a trained-length window along")
    if count >= 1 + VIDEO_FRAME_STEP and (count - 1) % VIDEO_FRAME_STEP == 0:
        return count
    below = 1 + VIDEO_FRAME_STEP * ((count - 1) // VIDEO_FRAME_STEP)
    nearest = [n for n in (below, below + VIDEO_FRAME_STEP) if n >= 1 + VIDEO_FRAME_STEP] or [5]
    raise ValueError(f"the video VAE makes 1 + 4k frames (5, 9, ..., 29, 33, ...); nearest valid: "
                     f"{' or '.join(map(str, nearest))}")


def motion_flow(value) -> float | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    flow = _number(value)
    low, high = FLOW_RANGE
    if not low <= flow <= high:
        raise ValueError(f"out of range: motion flow is {low:g}..{high:g} (training clips ~0..10, default 5)")
    return flow


def usable_flow(measured: float) -> tuple[float, str | None]:
    """A measured flow as a value ``--flow`` accepts: clamped into FLOW_RANGE, with a note if it was."""
    low, high = FLOW_RANGE
    used = min(max(measured, low), high)
    if used == measured:
        return used, None
    return used, (f"measured flow {measured:.2f} is outside the {low:g}..{high:g} that --flow accepts; "
                  f"using {used:g} (the {'strongest' if used == high else 'least'} motion the model knows)")


def fps(value) -> float:
    rate = _number(value)
    if not 0 < rate <= 240:
        raise ValueError("must be between 0 and 240")
    return rate


def guidance(value) -> float:
    scale = _number(value)
    if scale < 0:
        raise ValueError("must be 0 or more (1 or less switches guidance off)")
    return scale


def seed(value) -> int:
    number = _integer(value)
    if not 0 <= number < 2**63:
        raise ValueError("must be between 0 and 2^63 - 1")
    return number


def dtype(value) -> str:
    name = DTYPE_ALIASES.get(str(value).lower(), str(value).lower())
    if name not in DTYPES:
        raise ValueError(f"must be one of {', '.join(DTYPES)}")
    return name


def device(value) -> str:
    name = str(value).strip().lower()
    if not name:
        raise ValueError("must name a device (auto, cpu, cuda, cuda:N, mps)")
    return name


def text(value) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def optional_text(value) -> str | None:
    return None if value is None or value == "" else text(value)


def chunk(value) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return at_least(1)(value)


def flag(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


# name -> check; the names are the preset keys, the JSONL keys and (with dashes) the flags.
CHECKS: dict[str, Callable[[Any], Any]] = {
    "model": text,
    "revision": optional_text,
    "seed": seed,
    "negative_prompt": text,
    "guidance": guidance,
    "ar_steps": at_least(1),
    "diffusion_steps": at_least(1),
    "frames": valid_frames,
    "flow": motion_flow,
    "fps": fps,
    "num": at_least(1, MAX_NUM, " (one command line; use nova batch for more)"),
    "steps": at_least(1, MAX_STEPS, " (16 new frames each at the default window)"),
    "chunk": chunk,
    "device": device,
    "dtype": dtype,
    "low_memory": flag,
}


def check(name: str, value: Any, source: str) -> Any:
    """The checked value, or a UsageError naming where the bad value came from."""
    if name not in CHECKS:
        raise UsageError(f"{source}: unknown setting {name!r} (known: {', '.join(sorted(CHECKS))})")
    try:
        return CHECKS[name](value)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


def flag_source(name: str, value: Any) -> str:
    return f"--{name.replace('_', '-')} {value}"


@dataclass(frozen=True)
class Settings:
    """The settings of one job after presets and flags are combined.

    The bundled presets set every value that matters; the defaults here only fill in what a user
    preset that replaces a bundled one leaves out (None: not set anywhere).
    """

    model: str
    presets: tuple[str, ...]
    revision: str | None = None
    seed: int | None = None
    negative_prompt: str = ""
    guidance: float = 5.0
    ar_steps: int = 64
    diffusion_steps: int = 25
    frames: int | None = None
    flow: float | str = 5.0  # the pipeline's default
    fps: float = 12.0
    num: int = 1
    steps: int = 1
    chunk: int | str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    low_memory: bool = False


def base_preset(command: str) -> str:
    """Each command starts from the bundled preset of its kind."""
    return "image" if command in IMAGE_COMMANDS else "video"


def combine(command: str, flags: dict, presets) -> Settings:
    """Layers, later wins: the command's base preset, ``--model PRESET``, each ``--preset``, flags.

    ``flags`` holds values given on the command line or a batch line (None = not given);
    ``presets`` is a :class:`nova_cli.presets.PresetBook`.
    """
    flags = {k: v for k, v in flags.items() if v is not None}
    names = [base_preset(command)]
    model = flags.get("model")
    if isinstance(model, str) and presets.has(model) and not Path(model).expanduser().exists():
        names.append(model)  # --model PRESET: that preset's checkpoint and settings
        flags.pop("model")
    names += _preset_names(flags.pop("preset", None))
    values: dict[str, Any] = {}
    for name in names:
        values.update(presets.get(name).values)
    for name, value in flags.items():
        values[name] = check(name, value, flag_source(name, value))
    if not values.get("model"):
        raise UsageError(f"no model: presets {', '.join(names)} name none; pass --model")
    if command != "extend" and values.get("flow") == "auto":
        raise UsageError("--flow auto measures an input clip: it works with extend only")
    if command in VIDEO_COMMANDS and values.get("frames") is None:
        raise UsageError(f"no frame count: presets {', '.join(names)} set none; pass --frames")
    unique = tuple(dict.fromkeys(names))
    return Settings(presets=unique, **values)


def _preset_names(value) -> list[str]:
    """``--preset a --preset b`` or ``--preset a,b`` (and a string or list in a batch line)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    names = [n.strip() for item in items for n in str(item).split(",")]
    return [n for n in names if n]
