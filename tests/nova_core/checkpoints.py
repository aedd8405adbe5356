"""Writable copies of the tiny checkpoints, and edits of their JSON and safetensors files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


def edit_json(path: Path, change) -> None:
    """``change(data)`` edits the parsed file in place (what it returns is ignored)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_weights(path: Path, change) -> None:
    """``change(tensors)`` edits the dict of a safetensors file in place."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


MARKER_CODE = "import pathlib; pathlib.Path({marker!r}).write_text('executed')\n"


def hostile_module(path: Path, marker: Path) -> None:
    """A .py file that leaves ``marker`` behind if anything ever imports it."""
    path.write_text(MARKER_CODE.format(marker=str(marker)) +
                    "from transformers import PreTrainedTokenizerFast, PhiModel\n"
                    "class EvilTokenizer(PreTrainedTokenizerFast): pass\n"
                    "class EvilModel(PhiModel): pass\n")


def hostile_pickle(path: Path, marker: Path) -> None:
    """A pickle that writes ``marker`` when it is unpickled (what torch.load of a .bin may do)."""
    import pickle

    class Payload:
        def __reduce__(self):
            return exec, (MARKER_CODE.format(marker=str(marker)),)

    path.write_bytes(pickle.dumps({"weight": Payload()}))
