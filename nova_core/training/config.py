"""Training settings: one TOML file, dotted overrides from the command line, checked up front.

Sections follow the parts of a run: ``[model]`` what to train, ``[data]`` what on, ``[train]`` the
objective and loop, ``[optim]``, ``[ema]``, ``[log]``, ``[distributed]``. Every key has a default,
so a run needs only ``model.checkpoint``, ``data.cache`` and ``train.output_dir``. Unknown keys are
errors (a typo must not silently train with a default).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError

INITS = ("default", "mar", "skip", "aligned")  # model.init: starting weights of a scratch transformer (see init.py)


class ConfigError(InputError):
    """A setting is unknown, of the wrong type or out of range."""


@dataclass
class ModelSettings:
    checkpoint: str = ""  # folder or Hub repo id: transformer, scheduler, VAE, text encoder, tokenizer
    revision: str = ""  # Hub revision (a commit hash pins it)
    scratch: bool = False  # random transformer weights instead of the checkpoint's
    transformer: dict = field(default_factory=dict)  # with scratch: transformer config keys to change
    init: str = "default"  # with scratch: "default" (torch's), "mar" (Xavier, adaLN-Zero head), "skip" (+ identity encoder blocks) or "aligned" (+ condition heads; see init.py)


@dataclass
class DataSettings:
    cache: str = ""  # a folder written by `nova prepare`
    caption_dropout: float = 0.1  # share of captions replaced by the empty prompt (for CFG)


@dataclass
class TrainSettings:
    output_dir: str = ""
    steps: int = 1000  # optimizer steps in total (a resumed run continues up to this)
    batch_size: int = 8  # global: samples per optimizer step over all processes and micro-steps
    grad_accum: int = 1  # micro-steps per optimizer step
    seed: int = 0
    loss_repeat: int = 4  # noise draws per token (the paper's diffusion-loss repeat)
    mask_ratio: list = field(default_factory=lambda: [0.7, 1.0])  # truncated normal bounds
    mask_std: float = 0.25  # its spread around 1.0
    # share of frames that hide every token (0: the paper's masks alone). A small model with few
    # tokens a frame otherwise learns the caption slowly: the few visible tokens give it the rest
    full_mask_share: float = 0.0
    # 0: the paper's loss. w > 0: each hidden token's loss weighs 1 + w * min(1, d), d its RMS distance
    # from its frame's median token (scaled latents): small objects on plain backgrounds (the demo)
    # otherwise give ~5 % of the gradient and are learned last
    rare_token_weight: float = 0.0
    mixed_precision: str = "bf16"  # "bf16" (autocast, CUDA only) or "no"
    gradient_checkpointing: int = 0  # 0 off, 1 temporal encoder, 2 + spatial encoder, 3 + head
    freeze: list = field(default_factory=lambda: ["text_embed.norm", "motion_embed"])
    max_grad_norm: float = 0.0  # 0: no clipping
    device: str = "auto"  # auto (CUDA when present), cpu or cuda


@dataclass
class OptimSettings:
    lr: float = 0.0  # 0: base_lr * batch_size / base_batch
    base_lr: float = 1e-4
    base_batch: int = 256
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.02
    eps: float = 1e-8
    warmup_steps: int = 100  # linear warm-up from 0
    schedule: str = "constant"  # after warm-up: constant or cosine (to 0 at the last step)


@dataclass
class EMASettings:
    decay: float = 0.9999  # 0 disables the EMA; early steps use min(decay, (1+n)/(10+n))


@dataclass
class LogSettings:
    every: int = 10  # steps per JSONL line / display update
    save_every: int = 500  # steps per checkpoint (one is always written at the end)
    keep_last: int = 2  # checkpoints kept in output_dir (0: all)


@dataclass
class DistributedSettings:
    strategy: str = "ddp"  # ddp, or fsdp (parameters sharded over processes)


SECTIONS = {
    "model": ModelSettings, "data": DataSettings, "train": TrainSettings, "optim": OptimSettings,
    "ema": EMASettings, "log": LogSettings, "distributed": DistributedSettings,
}
CHOICES = {
    ("train", "mixed_precision"): ("bf16", "no"),
    ("train", "device"): ("auto", "cpu", "cuda"),
    ("optim", "schedule"): ("constant", "cosine"),
    ("distributed", "strategy"): ("ddp", "fsdp"),
}


@dataclass
class TrainConfig:
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    ema: EMASettings = field(default_factory=EMASettings)
    log: LogSettings = field(default_factory=LogSettings)
    distributed: DistributedSettings = field(default_factory=DistributedSettings)

    @property
    def lr(self) -> float:
        """The paper's rule unless set: 1e-4 x batch / 256."""
        return self.optim.lr or self.optim.base_lr * self.train.batch_size / self.optim.base_batch

    def to_dict(self) -> dict:
        return asdict(self)

    def set(self, key: str, value: Any) -> None:
        """``section.key = value`` with the type of the default."""
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} in {key!r} (sections: {', '.join(SECTIONS)})")
        settings = getattr(self, section)
        names = {f.name for f in fields(settings)}
        if name not in names:
            raise ConfigError(f"unknown setting {key!r} (in [{section}]: {', '.join(sorted(names))})")
        setattr(settings, name, _coerce(key, getattr(settings, name), value))

    def check(self) -> "TrainConfig":
        """Raise ConfigError on values that cannot work; return self."""
        t, o = self.train, self.optim
        for key, low in [("train.steps", 1), ("train.batch_size", 1), ("train.grad_accum", 1),
                         ("train.loss_repeat", 1), ("optim.base_batch", 1), ("log.every", 1),
                         ("log.save_every", 1), ("optim.warmup_steps", 0), ("log.keep_last", 0),
                         ("train.gradient_checkpointing", 0)]:
            if self.get(key) < low:
                raise ConfigError(f"{key} must be >= {low}, got {self.get(key)}")
        if t.gradient_checkpointing > 3:
            raise ConfigError("train.gradient_checkpointing must be 0..3")
        for (section, name), allowed in CHOICES.items():
            if getattr(getattr(self, section), name) not in allowed:
                raise ConfigError(f"{section}.{name} must be one of {', '.join(allowed)}, "
                                  f"got {getattr(getattr(self, section), name)!r}")
        if t.batch_size % t.grad_accum:
            raise ConfigError(f"train.batch_size ({t.batch_size}) must be a multiple of train.grad_accum ({t.grad_accum})")
        if len(t.mask_ratio) != 2 or not 0 <= t.mask_ratio[0] <= t.mask_ratio[1] <= 1 or not t.mask_ratio[1] > 0:
            raise ConfigError(f"train.mask_ratio must be [low, high] with 0 <= low <= high <= 1 and high > 0, "
                              f"got {t.mask_ratio}")
        if not t.rare_token_weight >= 0:
            raise ConfigError("train.rare_token_weight must be >= 0")
        if not 0 <= t.full_mask_share <= 1:
            raise ConfigError(f"train.full_mask_share must be in [0, 1], got {t.full_mask_share}")
        if not t.mask_std > 0:
            raise ConfigError("train.mask_std must be > 0")
        if not 0 <= self.data.caption_dropout < 1:
            raise ConfigError("data.caption_dropout must be in [0, 1)")
        if not 0 <= self.ema.decay < 1:
            raise ConfigError("ema.decay must be in [0, 1) (0 disables the EMA)")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")
        if o.lr < 0 or o.base_lr <= 0 or o.weight_decay < 0 or o.eps <= 0 or t.max_grad_norm < 0:
            raise ConfigError("optim.lr, optim.weight_decay and train.max_grad_norm must be >= 0; "
                              "optim.base_lr and optim.eps > 0")
        for key in ("model.checkpoint", "data.cache", "train.output_dir"):
            if not self.get(key):
                raise ConfigError(f"{key} is not set (config file or --{key.split('.')[1].replace('_', '-')})")
        if self.model.transformer and not self.model.scratch:
            raise ConfigError("model.transformer changes the architecture: it needs model.scratch = true")
        if self.model.init not in INITS:
            raise ConfigError(f"model.init must be one of {', '.join(INITS)}, got {self.model.init!r}")
        if self.model.init != "default" and not self.model.scratch:
            raise ConfigError("model.init sets starting weights: it needs model.scratch = true")
        return self

    def get(self, key: str):
        section, _, name = key.partition(".")
        return getattr(getattr(self, section), name)

    def to_toml(self) -> str:
        """The resolved settings as a TOML file that ``--config`` reads back."""
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
            lines.append("")
        return "\n".join(lines)


def load_config(path=None, overrides: dict | None = None, check: bool = True) -> TrainConfig:
    """Defaults, then the TOML file, then ``overrides`` ({"section.key": value}); checked."""
    config = TrainConfig()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable TOML file ({exc})") from None
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: {section!r} must be a [section], not a value")
            for name, value in values.items():
                config.set(f"{section}.{name}", value)
    for key, value in (overrides or {}).items():
        config.set(key, value)
    return config.check() if check else config


def parse_assignment(text: str) -> tuple[str, Any]:
    """``section.key=value`` from the command line; the value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def _coerce(key: str, default, value):
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{key} must be {type(default).__name__}, got {value!r}")
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)
