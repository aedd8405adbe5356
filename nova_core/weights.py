"""The one strict check between a component's config and its weight files, before any is loaded.

Only safetensors are read (a pickle can run code when it is unpickled). The model the config
describes is built on the ``meta`` device (no memory, no random init), and its state-dict names
and shapes must equal the file headers exactly: a missing, unexpected or reshaped tensor is a
one-line CheckpointError. Libraries would otherwise fill missing tensors with random values
(diffusers only logs it) or print a page of state-dict report for a shape mismatch.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .config_files import one_line, read_json
from .errors import CheckpointError
from .quiet import quiet_libraries

SAFETENSORS = ".safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def weight_files(folder: Path, component: str, stem: str) -> list[Path]:
    """``<stem>.safetensors``, or the shards its ``.index.json`` names (plain file names beside it)."""
    single, index = folder / f"{stem}{SAFETENSORS}", folder / f"{stem}{SAFETENSORS}.index.json"
    if single.is_file() and index.is_file():
        raise CheckpointError(f"{folder}: the {component} has both {single.name} and {index.name}; keep one")
    if single.is_file():
        return [single]
    if index.is_file():
        return _shards(index, component)
    try:
        pickles = sorted(p.name for p in folder.iterdir() if _is_pickle(p.name))
    except OSError:  # not a folder, or unreadable: the message below says what is missing
        pickles = []
    if pickles:
        raise CheckpointError(f"{folder}: the {component} has only pickle weights ({_first(pickles)}); nova reads"
                              f" safetensors only (unpickling can run code), refused")
    raise CheckpointError(f"{folder}: the {component} component has no {single.name} or {index.name}")


def _is_pickle(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES) or any(name.endswith(s + ".index.json") for s in PICKLE_SUFFIXES)


def _shards(index: Path, component: str) -> list[Path]:
    data = read_json(index)
    weight_map = data.get("weight_map")
    if not isinstance(data.get("metadata"), dict):  # the libraries' loaders index into it
        raise CheckpointError(f"{index}: lacks its metadata object (an index has metadata and weight_map)")
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: weight_map must map tensor names to file names")
    names = sorted(set(weight_map.values()))
    bad = [n for n in names if not n.endswith(SAFETENSORS)]
    if bad:
        raise CheckpointError(f"{index}: the {component} index names non-safetensors files ({_first(bad)}); nova"
                              f" reads safetensors only (unpickling can run code), refused")
    outside = [n for n in names if Path(n).name != n or n in (".", "..")]
    if outside:
        raise CheckpointError(f"{index}: shards must be files beside the index, got {_first(outside)}")
    missing = [n for n in names if not (index.parent / n).is_file()]
    if missing:
        raise CheckpointError(f"{index}: the {component} shard(s) {_first(missing)} are missing")
    return [index.parent / n for n in names]


def file_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors headers (no tensor data is read)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    if key in shapes:
                        raise CheckpointError(f"{file}: tensor {key} is also in another shard")
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own error types, OSError, ValueError
            raise CheckpointError(f"{file}: not a readable safetensors file ({one_line(exc)})") from None
    return shapes


@contextmanager
def empty_weights():
    """Build modules on the meta device, where no values exist, so random init is skipped: torch
    sends a meta ``normal_`` (every ``nn.Embedding``) through ``torch._refs``, which imports
    ``torch._dynamo``, ~2 s of CPU in a process that never compiles anything."""
    import torch

    normal_ = torch.Tensor.normal_

    def skip_on_meta(tensor, *args, **kwargs):
        return tensor if tensor.is_meta else normal_(tensor, *args, **kwargs)

    torch.Tensor.normal_ = skip_on_meta
    try:
        with torch.device("meta"):
            yield
    finally:
        torch.Tensor.normal_ = normal_


def meta_model(build: Callable, config_file: Path, component: str):
    """The model ``build()`` makes, built on the meta device (nothing allocated, no random init)."""
    try:
        with empty_weights(), quiet_libraries():
            return build()
    except CheckpointError as exc:
        raise CheckpointError(f"{config_file}: {exc}") from None
    except Exception as exc:  # a config value the class cannot build from (types were checked)
        raise CheckpointError(f"{config_file}: cannot build the {component} from it ({one_line(exc)})") from None


def shapes(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def meta_shapes(build: Callable, config_file: Path, component: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the model ``build()`` makes (built on the meta device)."""
    return shapes(meta_model(build, config_file, component))


def assign(model, files: list[Path], dtype) -> None:
    """Load the (checked) tensors of ``files`` into a meta-built ``model`` as its own, in ``dtype``."""
    from safetensors.torch import load_file

    state = {}
    for file in files:
        state.update(load_file(str(file)))
    model.load_state_dict(state, strict=True, assign=True)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a buffer the files cannot hold; the class must make it itself
        raise CheckpointError(f"{files[0].parent}: {', '.join(left[:3])} not in the weight files")
    model.to(dtype)


def check_match(component: str, folder: Path, expected: dict, found: dict, optional=frozenset()) -> None:
    """Exactly the tensors of the config, each with its shape; ``optional`` ones may be absent."""
    missing = [k for k in expected if k not in found and k not in optional]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if reshaped:
        shown = ", ".join(f"{k} {list(found[k])} vs {list(expected[k])}" for k in reshaped[:2])
        problems.append(f"{len(reshaped)} of another shape (file vs config: {shown}{', ...' if len(reshaped) > 2 else ''})")
    if problems:
        raise CheckpointError(f"{folder}: the {component} weights do not match its config: {'; '.join(problems)}")


def _first(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")
