"""What nova's networks take from diffusers' ``ModelMixin`` / ``ConfigMixin``, without diffusers.

Importing diffusers costs ~1.7 s of CPU in every process (its configuration module pulls in
``torch._dynamo``), more than the whole demo model takes to draw an image. The files stay
diffusers': ``config.json`` (``_class_name``, ``_diffusers_version``, then the constructor's
arguments) and ``diffusion_pytorch_model.safetensors``, so diffusers and diffnext read what nova
writes and nova reads theirs. Loading builds the network on the meta device and assigns the
stored tensors, which must match it exactly (nothing is initialised at random only to be replaced).
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import fields
from pathlib import Path

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


class FrozenConfig(dict):
    """Constructor values as ``config.x`` or ``config["x"]``, never changed in place (a scheduler's tables and
    a model's shapes were made from them; ``register_to_config`` makes a new one), as diffusers' FrozenDict."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no attribute {name!r}") from None

    def _frozen(self, *args, **kwargs):
        raise TypeError("a config is immutable: build anew with from_config(config, key=value)")

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = __ior__ = _frozen
    clear = pop = popitem = setdefault = update = _frozen

    def __reduce__(self):  # copy and pickle rebuild it from a plain dict (item assignment is blocked)
        return type(self), (dict(self),)


def diffusers_version() -> str:
    """The installed diffusers' version, which diffusers itself would write, read without importing diffusers."""
    try:
        from importlib.metadata import version

        return version("diffusers")
    except Exception:  # not installed
        return "0.0.0"


def randn_tensor(shape, generator=None, device=None, dtype=None) -> torch.Tensor:
    """Noise drawn exactly as diffusers' ``randn_tensor`` draws it, so seeded runs match: a CPU generator draws on
    the CPU and the result moves to ``device``; a list of generators draws one batch row each."""
    device = torch.device(device) if isinstance(device, str) else device
    rand_device, device = device, device or torch.device("cpu")
    if generator is not None:
        kind = (generator[0] if isinstance(generator, list) else generator).device.type
        if kind != device.type and kind == "cpu":
            rand_device = "cpu"
        elif kind != device.type and kind == "cuda":
            raise ValueError(f"Cannot generate a {device} tensor from a generator of type {kind}.")
    generator = generator[0] if isinstance(generator, list) and len(generator) == 1 else generator
    if isinstance(generator, list):
        rows = [torch.randn((1, *shape[1:]), generator=generator[i], device=rand_device, dtype=dtype)
                for i in range(shape[0])]
        return torch.cat(rows, dim=0).to(device)
    return torch.randn(shape, generator=generator, device=rand_device, dtype=dtype).to(device)


def register_to_config(init):
    """Decorate ``__init__``: every argument (defaults included) becomes the model's config."""

    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        self.register_to_config(**{k: v for k, v in bound.arguments.items() if k != "self"})

    return wrapper


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return value


class ModelMixin(nn.Module):
    """``from_config`` / ``from_pretrained`` / ``save_pretrained`` / ``config`` for nova's networks."""

    @property
    def config(self) -> FrozenConfig:
        return self.__dict__.get("_internal_dict", FrozenConfig())

    def register_to_config(self, **values) -> None:
        self.__dict__["_internal_dict"] = FrozenConfig({**self.config, **values})

    @classmethod
    def init_arguments(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    @classmethod
    def from_config(cls, config) -> "ModelMixin":
        """Unknown and ``_``-prefixed keys are ignored, as diffusers ignores them."""
        names = cls.init_arguments()
        return cls(**{k: v for k, v in dict(config).items() if k in names})

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        floats = [p.dtype for p in self.parameters() if p.is_floating_point()]
        return floats[0] if floats else torch.get_default_dtype()

    @classmethod
    def load_config(cls, folder) -> dict:
        return json.loads((Path(folder) / CONFIG_NAME).read_text(encoding="utf-8"))

    @classmethod
    def from_pretrained(cls, folder, torch_dtype: torch.dtype | None = None, **_options) -> "ModelMixin":
        """A local folder with one weight file (checkpoints go through ``nova_core.loading``, which
        checks them first). Options diffusers takes for the same files (``use_safetensors``,
        ``local_files_only``) change nothing here."""
        from .weights import assign, empty_weights

        folder = Path(folder)
        with empty_weights():
            model = cls.from_config(cls.load_config(folder))
        assign(model, [folder / WEIGHTS_NAME], torch_dtype or torch.get_default_dtype())
        return model

    def to_json_string(self) -> str:
        """``config.json`` as diffusers writes it."""
        config = {"_class_name": type(self).__name__, "_diffusers_version": diffusers_version()}
        config.update({k: _jsonable(v) for k, v in self.config.items() if not k.startswith("_")})
        return json.dumps(config, indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, folder) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(self.to_json_string(), encoding="utf-8")
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})


class Output:
    """A model's named results, also readable by position (``out[0]``) as diffusers' outputs are."""

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)
