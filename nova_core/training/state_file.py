"""Resume state (optimizer, lr schedule, RNG states) as safetensors, never as pickles.

A training folder is as likely to be shared as a checkpoint, so it is read the same way: the
tensors are safetensors tensors, and the nested Python structure around them (dicts with str or
int keys, lists, tuples, numbers, strings, booleans, None) is JSON in the file's header. Nothing
else can be written, so nothing else can be read back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..config_files import one_line
from ..errors import CheckpointError

STRUCTURE = "nova.structure"  # header key of the JSON structure


class StateFileError(CheckpointError):
    """A state file that is not one nova wrote (one line: the file and what is wrong)."""


def save(obj, path: Path) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}

    def encode(x):
        if isinstance(x, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = x.detach().cpu().contiguous()
            return {"t": key}
        if isinstance(x, dict):
            if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in x):
                raise TypeError(f"state keys must be str or int, got {sorted(map(repr, x))[:3]}")
            return {"d": [[k, encode(v)] for k, v in x.items()]}
        if isinstance(x, (list, tuple)):
            return {"l" if isinstance(x, list) else "u": [encode(v) for v in x]}
        if x is None or isinstance(x, (bool, int, str)):
            return {"v": x}
        if isinstance(x, float):  # JSON has no inf / nan
            return {"f": repr(x)} if not math.isfinite(x) else {"v": x}
        raise TypeError(f"cannot store a {type(x).__name__} in a state file")

    structure = json.dumps(encode(obj), separators=(",", ":"))
    save_file(tensors, str(path), metadata={STRUCTURE: structure})


def load(path: Path):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            structure = (f.metadata() or {}).get(STRUCTURE)
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except OSError as error:
        raise StateFileError(f"{path}: cannot read it ({one_line(error)})") from None
    except Exception as error:  # safetensors' own errors (a truncated or foreign file)
        raise StateFileError(f"{path}: not a safetensors file ({one_line(error)})") from None
    if structure is None:
        raise StateFileError(f"{path}: no {STRUCTURE} entry in its header: not a nova state file")

    def decode(node):
        if not isinstance(node, dict) or len(node) != 1:
            raise StateFileError(f"{path}: malformed structure entry {str(node)[:60]!r}")
        (kind, value), = node.items()
        if kind == "t":
            if value not in tensors:
                raise StateFileError(f"{path}: the structure names a missing tensor {value!r}")
            return tensors[value]
        if kind == "d":
            return {_key(k): decode(v) for k, v in value}
        if kind in ("l", "u"):
            items = [decode(v) for v in value]
            return items if kind == "l" else tuple(items)
        if kind == "v" and (value is None or isinstance(value, (bool, int, float, str))):
            return value
        if kind == "f" and value in ("inf", "-inf", "nan"):
            return float(value)
        raise StateFileError(f"{path}: malformed structure entry {str(node)[:60]!r}")

    def _key(k):
        if isinstance(k, bool) or not isinstance(k, (str, int)):
            raise StateFileError(f"{path}: a state key must be str or int, got {k!r}")
        return k

    try:
        return decode(json.loads(structure))
    except StateFileError:
        raise
    except (TypeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise StateFileError(f"{path}: malformed structure ({one_line(error)})") from None
