"""Training checkpoints: the official folder layout plus what a resumed run needs.

::

    checkpoint-000100/
      model_index.json, scheduler/, vae/, text_encoder/, tokenizer/   the source checkpoint's
                                files (hard-linked where the file system allows, else copied)
      transformer/              config.json + diffusion_pytorch_model.safetensors (float32): the
                                EMA weights when the EMA is on, else the trained weights
      training_state/
        state.json              step, data order (seed, batch size, cache fingerprint), EMA count
        model.safetensors       the trained (non-EMA) weights, only when transformer/ holds the EMA
        optimizer.safetensors  lr_scheduler.safetensors  rng.safetensors   (see state_file)

So ``NOVAPipeline.from_pretrained("checkpoint-000100")`` and ``nova t2v --model`` load it as is.
A checkpoint is written as ``checkpoint-000100.tmp`` and renamed when complete, so an interrupted
save never looks like a checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .. import loading
from ..errors import CheckpointError
from . import state_file

COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer")
WEIGHTS = "diffusion_pytorch_model.safetensors"
STATE = "training_state"
RESUME_PARTS = ("optimizer", "lr_scheduler", "rng")  # each in STATE/{name}.safetensors
_NAME = re.compile(r"^checkpoint-(\d+)$")


def name_for(step: int) -> str:
    return f"checkpoint-{step:06d}"


def checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := _NAME.match(p.name)) and (p / STATE / "state.json").is_file()]
    return [p for _, p in sorted(found)]


def latest(output_dir) -> Path | None:
    found = checkpoints(output_dir)
    return found[-1] if found else None


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (no extra space for multi-GB components), else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = src.resolve()  # the HF cache stores files as links to blobs
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def save(output_dir, step: int, *, components: Path, transformer_config: dict, weights: dict,
         ema_weights: dict | None, optimizer: dict, lr_scheduler: dict, rng: dict, state: dict) -> Path:
    """Write checkpoint ``step`` (main process only); returns its folder."""
    from safetensors.torch import save_file

    final = Path(output_dir) / name_for(step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    index = loading.read_model_index(components)
    for component in COMPONENTS:
        for src in sorted((components / component).rglob("*")):
            if src.is_file():
                link_or_copy(src, tmp / component / src.relative_to(components / component))
    loading.save_model_index(tmp, loading.class_name(index, "scheduler"), loading.class_name(index, "vae"))

    (tmp / "transformer").mkdir(parents=True)
    (tmp / "transformer" / "config.json").write_text(json.dumps(transformer_config, indent=2, sort_keys=True) + "\n")
    published = ema_weights if ema_weights is not None else weights
    save_file(_contiguous(published), str(tmp / "transformer" / WEIGHTS), metadata={"format": "pt"})

    folder = tmp / STATE
    folder.mkdir()
    if ema_weights is not None:
        save_file(_contiguous(weights), str(folder / "model.safetensors"), metadata={"format": "pt"})
    for name, value in zip(RESUME_PARTS, (optimizer, lr_scheduler, rng)):
        state_file.save(value, folder / f"{name}.safetensors")
    (folder / "state.json").write_text(json.dumps(dict(state, step=step), indent=1) + "\n")
    if final.exists():  # re-saving the same step (e.g. after an interrupt at a save point)
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load(folder: Path) -> dict:
    """Everything needed to resume from ``folder``: state, weights, ema, optimizer, lr, rng."""
    from safetensors.torch import load_file

    state_dir = folder / STATE
    state = json.loads((state_dir / "state.json").read_text())
    published = load_file(str(folder / "transformer" / WEIGHTS))
    has_ema = (state_dir / "model.safetensors").is_file()
    return {
        "state": state,
        "config": json.loads((folder / "transformer" / "config.json").read_text()),
        "weights": load_file(str(state_dir / "model.safetensors")) if has_ema else published,
        "ema_weights": published if has_ema else None,
        **{name: _resume_part(state_dir, name) for name in RESUME_PARTS},
    }


def _resume_part(state_dir: Path, name: str):
    path = state_dir / f"{name}.safetensors"
    if not path.is_file():
        old = " (its .pt pickle, from an older nova, is not read)" if (state_dir / f"{name}.pt").is_file() else ""
        raise CheckpointError(f"{state_dir.parent}: cannot resume, {STATE}/{path.name} is missing{old}; "
                              f"start a new output_dir, or train from it with model.checkpoint")
    return state_file.load(path)


def prune(output_dir, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (0 keeps all)."""
    if keep:
        for old in checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)


def _contiguous(weights: dict) -> dict:
    return {k: v.contiguous() for k, v in weights.items()}
