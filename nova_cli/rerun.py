"""``--from OUTPUT.json``: run an output again from its sidecar, which records everything that made it.

The sidecar's prompt, seed, model and revision, settings, dtype and input become the job's values,
layered just above the command's base preset: a ``--preset`` or ``--model PRESET`` given now
overrides what it sets, and every flag given now overrides the rest. ``--num`` is not taken (the
sidecar of output i holds its own seed), nor ``--device`` (noise is drawn on the CPU, so the output
is the same on every device up to floating-point differences).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MediaError, UsageError
from .settings import _preset_names, check

# sidecar "settings" key -> setting name (extend records the flow it was given as flow_setting)
SETTING_KEYS = ("ar_steps", "diffusion_steps", "guidance", "low_memory", "frames", "fps", "steps", "chunk")


@dataclass
class Rerun:
    prompt: str
    source: Path | None
    flags: dict  # setting name -> value, checked
    notes: list[str] = field(default_factory=list)


def read_sidecar(path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"--from {path}: is a folder, not a sidecar")
    if path.suffix != ".json" and Path(f"{path}.json").is_file():
        path = Path(f"{path}.json")  # --from clip.mp4 means its sidecar
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MediaError(f"--from {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"--from {path}: not a nova sidecar ({type(exc).__name__})") from None
    if not isinstance(data, dict) or "sidecar_version" not in data or not isinstance(data.get("settings"), dict):
        raise MediaError(f"--from {path}: not a nova sidecar (no sidecar_version and settings)")
    data["_path"] = path
    return data


def from_sidecar(path, command: str, given: dict, book) -> Rerun:
    """The job values a sidecar holds, minus those that ``given`` (the flags of this command line,
    None = not given) sets itself, or sets through a preset."""
    data = read_sidecar(path)
    path = data["_path"]
    made_by = data.get("command")
    if made_by != command:
        raise UsageError(f"--from {path}: made by nova {made_by}; re-run it with nova {made_by} --from {path}")
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    values = {"model": _model_of(model), "revision": model.get("revision"), "seed": data.get("seed"),
              "negative_prompt": data.get("negative_prompt"), "dtype": data.get("dtype")}
    settings = data["settings"]
    values |= {key: settings[key] for key in SETTING_KEYS if key in settings}
    if command == "extend":
        values["flow"] = settings.get("flow_setting", settings.get("flow"))
    elif command != "t2i":
        values["flow"] = settings.get("flow")
    if given.get("model") is not None and given.get("revision") is None:
        values.pop("revision")  # a revision of the sidecar's model means nothing for another model
    for name in _preset_names(given.get("preset")) + _model_preset(given.get("model"), book):
        for key in book.get(name).values:
            values.pop(key, None)
    flags = {key: check(key, value, f"--from {path}: {key} = {value!r}")
             for key, value in values.items() if value is not None and given.get(key) is None}
    source = None
    if command in ("i2v", "extend"):
        source = _input_path(data, path)
    notes = [f"--from {path}: seed {data.get('seed')}, model {values['model']}"
             + (f"@{str(values.get('revision'))[:10]}" if values.get("revision") else "")]
    from nova_core import __version__

    if data.get("nova_version") != __version__:
        notes.append(f"--from {path}: made with nova {data.get('nova_version')}, this is {__version__}:"
                     " the output may differ")
    prompt = data.get("prompt")
    if not isinstance(prompt, str):
        raise MediaError(f"--from {path}: not a nova sidecar (no prompt)")
    return Rerun(prompt, source, flags, notes)


def _model_of(model: dict):
    """The id the user gave; for a local folder named relative to another working folder, the folder."""
    name, folder = model.get("id"), model.get("folder")
    if (model.get("revision") is None and isinstance(name, str) and isinstance(folder, str)
            and not Path(name).expanduser().exists() and Path(folder).is_dir()):
        return folder
    return name


def _model_preset(model, book) -> list[str]:
    return [model] if isinstance(model, str) and book.has(model) and not Path(model).expanduser().exists() else []


def _input_path(data: dict, sidecar: Path) -> Path:
    """The image or clip the sidecar names; a relative path (older sidecars) is looked for here first,
    then beside the sidecar."""
    recorded = (data.get("input") or {}).get("path") if isinstance(data.get("input"), dict) else None
    if not isinstance(recorded, str) or not recorded:
        raise MediaError(f"--from {sidecar}: names no input {'image' if data.get('command') == 'i2v' else 'clip'}")
    candidate = Path(recorded).expanduser()
    if not candidate.is_absolute() and not candidate.exists() and (sidecar.parent / candidate).exists():
        candidate = sidecar.parent / candidate
    return candidate
