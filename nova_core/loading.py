"""Read a checkpoint folder in the official layout into components, with our own classes.

The official ``model_index.json`` points the transformer, VAE and text encoder at ``.py`` shims
(``__transformer__`` ...) that ``trust_remote_code`` would execute. We read only the class
names and build every component from code in this package, diffusers or transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import CheckpointError

COMPONENTS = ("transformer", "scheduler", "vae", "text_encoder", "tokenizer")
VAE_CLASSES = ("AutoencoderKLOpenSora", "AutoencoderKL")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")


def read_model_index(folder: Path) -> dict:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise CheckpointError(f"{folder}: not a NOVA checkpoint (no model_index.json)")
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{index_file}: unreadable ({exc})") from exc
    if index.get("_class_name") != "NOVAPipeline":
        raise CheckpointError(f"{folder}: not a NOVA checkpoint (model_index.json names {index.get('_class_name')!r})")
    missing = [c for c in COMPONENTS if c not in index or not (folder / c).is_dir()]
    if missing:
        raise CheckpointError(f"{folder}: checkpoint lacks the {', '.join(missing)} component(s)")
    return index


def class_name(index: dict, component: str) -> str:
    entry = index[component]
    return entry[1] if isinstance(entry, (list, tuple)) and len(entry) == 2 else str(entry)


def _require(folder: Path, component: str, files) -> None:
    if not any((folder / component / f).is_file() for f in files):
        raise CheckpointError(f"{folder}: the {component} component has no {' or '.join(files)}")


def _load_model(cls, folder: Path, component: str, dtype):
    from diffusers.utils import logging as diffusers_logging

    _require(folder, component, ("config.json",))
    _require(folder, component, WEIGHT_FILES)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # e.g. "double_z was passed to AutoencoderKL": expected
    try:
        return cls.from_pretrained(str(folder / component), torch_dtype=dtype).eval()
    except CheckpointError:
        raise
    except Exception as exc:  # diffusers reports missing/mismatched weights in various types
        raise CheckpointError(f"{folder / component}: cannot load {cls.__name__}: {exc}") from exc
    finally:
        diffusers_logging.set_verbosity(verbosity)


def vae_dtype(config, dtype):
    """float16 VAEs overflow unless the checkpoint says otherwise (``force_upcast``)."""
    if dtype == torch.float16 and config.get("force_upcast", True):
        return torch.float32
    return dtype


def load_transformer(folder: Path, dtype):
    from .transformer import NOVATransformer3DModel

    return _load_model(NOVATransformer3DModel, folder, "transformer", dtype)


def load_vae(folder: Path, name: str, dtype):
    if name not in VAE_CLASSES:
        raise CheckpointError(f"{folder}: unknown VAE class {name!r} (expected one of {', '.join(VAE_CLASSES)})")
    if name == "AutoencoderKLOpenSora":
        from .vae_opensora import AutoencoderKLOpenSora as cls
    else:
        from diffusers import AutoencoderKL as cls
    _require(folder, "vae", ("config.json",))
    config = json.loads((folder / "vae" / "config.json").read_text())
    return _load_model(cls, folder, "vae", vae_dtype(config, dtype))


def load_scheduler(folder: Path, name: str):
    import diffusers
    from diffusers import SchedulerMixin

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise CheckpointError(f"{folder}: unknown scheduler class {name!r}")
    _require(folder, "scheduler", ("scheduler_config.json",))
    return cls.from_pretrained(str(folder / "scheduler"))


def load_text_encoder(folder: Path, dtype):
    from .text import load_text_encoder as load

    _require(folder, "text_encoder", ("config.json",))
    _require(folder, "text_encoder", ("model.safetensors", "model.safetensors.index.json"))
    try:
        return load(folder / "text_encoder", dtype)
    except Exception as exc:
        raise CheckpointError(f"{folder / 'text_encoder'}: cannot load the Phi text encoder: {exc}") from exc


def load_tokenizer(folder: Path):
    from .text import load_tokenizer as load

    _require(folder, "tokenizer", ("tokenizer.json", "vocab.json"))
    try:
        return load(folder / "tokenizer")
    except Exception as exc:
        raise CheckpointError(f"{folder / 'tokenizer'}: cannot load the tokenizer: {exc}") from exc


def save_model_index(folder: Path, scheduler_name: str, vae_name: str) -> None:
    """The official model_index.json (the shim module names included, so diffnext can read it)."""
    index = {
        "_class_name": "NOVAPipeline",
        "tokenizer": ["transformers", "CodeGenTokenizerFast"],
        "scheduler": ["diffusers", scheduler_name],
        "vae": ["__vae__", vae_name],
        "text_encoder": ["__text_encoder__", "PhiEncoderModel"],
        "transformer": ["__transformer__", "NOVATransformer3DModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def save_text_encoder(model, folder: Path) -> None:
    """Phi in the official key layout (``model.``-prefixed, as PhiForCausalLM/diffnext expect)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = ["PhiEncoderModel"]
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    state = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
