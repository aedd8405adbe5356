"""Phi's decoder stack, as NOVA reads prompts with it: the last hidden state under causal attention.

Same parameters (names and shapes) and the same arithmetic as transformers' ``PhiModel`` (tests pin
the two together), but none of transformers' model machinery: importing that is most of a short
run's start-up (~1 s of a 3 s CPU text-to-image). The config is :class:`PhiSettings` (or
transformers' ``PhiConfig``: the model reads the same attributes of either).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError

_TANH_GELU = functools.partial(F.gelu, approximate="tanh")
ACTIVATIONS = {"gelu_new": _TANH_GELU, "gelu_pytorch_tanh": _TANH_GELU, "gelu_fast": _TANH_GELU, "gelu": F.gelu}


@dataclass(frozen=True)
class PhiSettings:
    """transformers' ``PhiConfig`` as far as a config.json goes: the same keys, types and defaults
    (transformers 4.x and 5.x agree on them), without importing transformers."""

    vocab_size: int = 51200
    hidden_size: int = 2048
    intermediate_size: int = 8192
    num_hidden_layers: int = 24
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None  # None: one per attention head
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    attention_dropout: float | None = 0.0
    hidden_act: str = "gelu_new"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    use_cache: bool = True
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 0.5
    rope_type: str = "default"
    qk_layernorm: bool = False
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    pad_token_id: int | None = None
    source: dict = field(default_factory=dict, compare=False, repr=False)  # the config.json it came from

    def __post_init__(self):
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)

    @classmethod
    def from_dict(cls, config: dict) -> "PhiSettings":
        """Rotary settings as transformers 5 resolves them: ``rope_scaling`` or ``rope_parameters``
        first, then the top-level ``rope_theta`` / ``partial_rotary_factor``, then the defaults."""
        rope = config.get("rope_scaling") or config.get("rope_parameters") or {}
        names = {f.name for f in fields(cls)} - {"rope_theta", "partial_rotary_factor", "rope_type", "source"}
        return cls(**{k: v for k, v in config.items() if k in names},
                   rope_theta=rope.get("rope_theta", config.get("rope_theta", cls.rope_theta)),
                   partial_rotary_factor=rope.get("partial_rotary_factor",
                                                  config.get("partial_rotary_factor", cls.partial_rotary_factor)),
                   rope_type=rope.get("rope_type", rope.get("type", "default")), source=dict(config))

    @property
    def rope_parameters(self) -> dict:
        """What :func:`rope_settings` reads (transformers 5's name for it)."""
        return {"rope_type": self.rope_type, "rope_theta": self.rope_theta,
                "partial_rotary_factor": self.partial_rotary_factor}

    def to_dict(self) -> dict:
        """config.json for transformers' PhiConfig (and nova): the source file with the values read."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("rope_type", "source")}
        return {**self.source, "model_type": "phi", **values}


def rope_settings(config) -> tuple[float, float]:
    """(theta, partial rotary factor), from transformers >= 5 ``rope_parameters`` or the older fields."""
    rope = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}  # transformers < 5
    kind = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise CheckpointError(f"text encoder: rope type {kind!r} is not Phi-2's; nova reads prompts with "
                              "default rotary embeddings only")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    factor = rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0))
    return float(theta), float(factor)


def check_supported(config) -> None:
    """The Phi variants nova computes; anything else is refused rather than computed wrongly."""
    if config.hidden_act not in ACTIVATIONS:
        raise CheckpointError(f"text encoder: activation {config.hidden_act!r} is not supported "
                              f"({', '.join(ACTIVATIONS)})")
    if getattr(config, "qk_layernorm", False):
        raise CheckpointError("text encoder: qk_layernorm is not Phi-2's and is not supported")
    rope_settings(config)


class PhiAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = config.hidden_size // self.heads
        self.q_proj = nn.Linear(config.hidden_size, self.heads * self.head_dim)
        self.k_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim)
        self.v_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim)
        self.dense = nn.Linear(self.heads * self.head_dim, config.hidden_size)
        self.rotary_dims = rotary_dims(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length = x.shape[:2]
        q, k, v = (proj(x).view(batch, length, -1, self.head_dim).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        q, k = rotate(q, cos, sin, self.rotary_dims), rotate(k, cos, sin, self.rotary_dims)
        if self.kv_heads != self.heads:
            k, v = (t.repeat_interleave(self.heads // self.kv_heads, dim=1) for t in (k, v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.head_dim**-0.5)
        return self.dense(out.transpose(1, 2).reshape(batch, length, -1))


def rotary_dims(config) -> int:
    """Channels of each head that rotate (Phi-2 rotates 40 %)."""
    return int(config.hidden_size // config.num_attention_heads * rope_settings(config)[1])


def inverse_frequencies(config) -> torch.Tensor:
    """float32 on the CPU, whatever device the model is built on (it is not a weight)."""
    theta, dims = rope_settings(config)[0], rotary_dims(config)
    return 1.0 / (theta ** (torch.arange(0, dims, 2, dtype=torch.float, device="cpu") / max(dims, 1)))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dims: int) -> torch.Tensor:
    """Rotary embedding on the first ``dims`` channels of each head (Phi's partial rotary)."""
    rot, rest = x[..., :dims], x[..., dims:]
    half = rot.shape[-1] // 2
    turned = torch.cat((-rot[..., half:], rot[..., :half]), dim=-1)
    return torch.cat((rot * cos + turned * sin, rest), dim=-1)


class PhiMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PhiLayer(nn.Module):
    """Attention and MLP in parallel on one layer norm, both added to the residual (Phi's block)."""

    def __init__(self, config):
        super().__init__()
        self.self_attn = PhiAttention(config)
        self.mlp = PhiMLP(config)
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = self.input_layernorm(x)
        return self.self_attn(h, cos, sin) + self.mlp(h) + x


class PhiEncoder(nn.Module):
    """``PhiEncoder(config)(input_ids=ids).last_hidden_state``, like ``PhiModel`` without a mask."""

    def __init__(self, config):
        super().__init__()
        check_supported(config)
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(PhiLayer(config) for _ in range(config.num_hidden_layers))
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.register_buffer("inv_freq", inverse_frequencies(config), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.weight.dtype

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        h = self.embed_tokens(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device, dtype=torch.float)
        freqs = positions[:, None] * self.inv_freq.to(input_ids.device)[None]
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos().to(h.dtype), angles.sin().to(h.dtype)
        for layer in self.layers:
            h = layer(h, cos, sin)
        return SimpleNamespace(last_hidden_state=self.final_layernorm(h))


PREFIX = "model."  # the official files hold PhiForCausalLM: the decoder under model., then lm_head


def official_shapes(config) -> tuple[dict, set]:
    """Tensor name -> shape of the official layout, and the names that may be absent (the LM head,
    which NOVA never uses)."""
    from .weights import empty_weights

    with empty_weights():
        model = PhiEncoder(config)
    shapes = {PREFIX + k: tuple(v.shape) for k, v in model.state_dict().items()}
    head = {"lm_head.weight": (config.vocab_size, config.hidden_size), "lm_head.bias": (config.vocab_size,)}
    return shapes | head, set(head)


def load(config, files, dtype) -> PhiEncoder:
    """The decoder's tensors from the (already checked) safetensors files, in ``dtype``."""
    from safetensors import safe_open

    from .weights import empty_weights

    with empty_weights():
        model = PhiEncoder(config)
    state = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if key.startswith(PREFIX):
                    state[key[len(PREFIX):]] = f.get_tensor(key).to(dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.inv_freq = inverse_frequencies(config)
    return model.eval().requires_grad_(False)
