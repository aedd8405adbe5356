"""Prompt -> Phi hidden states, the way NOVA was trained.

Each prompt is tokenized to exactly ``max_length`` ids (truncated, right-padded with
``<|endoftext|>``) and Phi runs on the padded ids without an attention mask: its attention is
causal, so real tokens never see the padding. Only the first ``len`` rows are kept; the
transformer fills the rest with its learned padding rows (``TextEmbed.pad``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import weights
from .config_files import Bound, check_bounds, check_types, one_line, read_json, refuse_code
from .errors import CheckpointError
from .quiet import quiet_libraries


# Tokenizer classes a checkpoint may name, and the class that loads them: all read tokenizer.json
# (or vocab.json + merges.txt) only. Anything else would be a class nova does not know.
TOKENIZER_CLASSES = {
    "CodeGenTokenizer": "CodeGenTokenizerFast", "CodeGenTokenizerFast": "CodeGenTokenizerFast",
    "GPT2Tokenizer": "GPT2TokenizerFast", "GPT2TokenizerFast": "GPT2TokenizerFast",
    "PreTrainedTokenizerFast": "PreTrainedTokenizerFast",
}
# Every JSON file a tokenizer load may read (transformers looks at a config.json beside it for the
# tokenizer class when tokenizer_config.json names none).
TOKENIZER_JSON = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                  "config.json")
TEXT_ENCODER_ARCHITECTURES = ("PhiEncoderModel", "PhiModel", "PhiForCausalLM")
PHI_BOUNDS = {
    "hidden_size": Bound(1, 16384), "intermediate_size": Bound(1, 131072), "num_hidden_layers": Bound(1, 256),
    "num_attention_heads": Bound(1, 1024), "num_key_value_heads": Bound(1, 1024),
    "vocab_size": Bound(1, 1_000_000), "max_position_embeddings": Bound(1, 1_000_000),
    "partial_rotary_factor": Bound(0, 1, integer=False, above=True),
    "rope_theta": Bound(0, 1e12, integer=False, above=True),
    "layer_norm_eps": Bound(0, 1, integer=False, above=True),
}


def load_tokenizer(folder):
    """The tokenizer of ``folder`` through a fixed class: never ``AutoTokenizer``, which follows a
    config's ``auto_map`` to a ``.py`` file beside it (and asks on stdin whether to run it).

    Built on the ``tokenizers`` library alone (:mod:`nova_core.tokenizer`, the same ids as
    transformers gives); only files that module does not rebuild go through transformers."""
    from . import tokenizer as own

    folder = Path(folder)
    files = {}
    for name in TOKENIZER_JSON:  # every JSON file the tokenizer reads is checked first
        if (folder / name).is_file():
            files[name] = read_json(folder / name)
            refuse_code(folder / name, files[name], "tokenizer")
    config = files.get("tokenizer_config.json", {})
    if not any((folder / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        raise CheckpointError(f"{folder}: the tokenizer component has no tokenizer.json or vocab.json")
    name = config.get("tokenizer_class") or "CodeGenTokenizer"
    if name not in TOKENIZER_CLASSES:
        raise CheckpointError(f"{folder / 'tokenizer_config.json'}: tokenizer_class {name!r} is not one nova "
                              f"loads ({', '.join(sorted(TOKENIZER_CLASSES))}); refused")
    try:
        try:
            return own.build(folder, TOKENIZER_CLASSES[name], files)
        except own.Unsupported:
            return _transformers_tokenizer(folder, TOKENIZER_CLASSES[name])
    except own.MissingPad:
        raise CheckpointError(f"{folder}: the tokenizer has neither a pad nor an eos token to pad prompts "
                              "with") from None
    except Exception as exc:  # tokenizers/transformers raise many types for broken files
        main = "tokenizer.json" if (folder / "tokenizer.json").is_file() else "vocab.json"
        raise CheckpointError(f"{folder / main}: cannot load the tokenizer ({one_line(exc)})") from None


def _transformers_tokenizer(folder: Path, cls: str):
    """Files :mod:`nova_core.tokenizer` does not rebuild, through transformers' class, wrapped so
    that prompts still go to the backend the same way."""
    import transformers

    from .tokenizer import MissingPad, PromptTokenizer, source_files

    with quiet_libraries():
        tokenizer = getattr(transformers, cls).from_pretrained(str(folder), local_files_only=True,
                                                                trust_remote_code=False)
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        raise MissingPad()
    return PromptTokenizer(tokenizer.backend_tokenizer, tokenizer.pad_token or tokenizer.eos_token,
                           tokenizer.eos_token, tokenizer.truncation_side, source_files(folder))


def read_text_encoder_config(folder):
    """``text_encoder/config.json`` checked and turned into a :class:`nova_core.phi.PhiSettings`
    (Phi-2 is NOVA's encoder; the values and defaults are those of transformers' PhiConfig)."""
    from .phi import PhiSettings

    path = Path(folder) / "config.json"
    config = read_json(path)
    refuse_code(path, config, "text encoder")
    if config.get("model_type") != "phi":
        raise CheckpointError(f"{path}: model_type must be 'phi' (NOVA encodes prompts with Phi-2), "
                              f"got {config.get('model_type')!r}")
    architectures = config.get("architectures") or ["PhiEncoderModel"]
    if not isinstance(architectures, list) or any(a not in TEXT_ENCODER_ARCHITECTURES for a in architectures):
        raise CheckpointError(f"{path}: architectures {architectures!r} names a class nova does not build "
                              f"(it builds {', '.join(TEXT_ENCODER_ARCHITECTURES)}); refused")
    check_bounds(path, config, PHI_BOUNDS, required=("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                     "vocab_size"))
    check_types(path, config, PhiSettings)
    if config["hidden_size"] % config["num_attention_heads"]:
        raise CheckpointError(f"{path}: hidden_size {config['hidden_size']} is not a multiple of "
                              f"num_attention_heads {config['num_attention_heads']}")
    rope = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise CheckpointError(f"{path}: rope_scaling / rope_parameters must be an object, got {rope!r}")
    check_bounds(path, rope, {k: PHI_BOUNDS[k] for k in ("rope_theta", "partial_rotary_factor")})
    return PhiSettings.from_dict(config)


def text_encoder_shapes(config, config_file) -> tuple[dict, set]:
    """The official layout's tensors (PhiForCausalLM: ``model.``-prefixed, plus the LM head, which
    nova never uses and so may be absent)."""
    from . import phi

    try:
        return phi.official_shapes(config)
    except CheckpointError as exc:
        raise CheckpointError(f"{config_file}: {exc}") from None


def load_text_encoder(folder, dtype):
    """Phi's decoder stack only (:class:`nova_core.phi.PhiEncoder`): NOVA never uses the LM head,
    so it is not loaded.

    The files hold the official ``PhiForCausalLM`` layout (``model.``-prefixed, with the LM head,
    which may be absent); they must match the config exactly (:mod:`nova_core.weights`).
    """
    from . import phi

    folder = Path(folder)
    config = read_text_encoder_config(folder)
    files = weights.weight_files(folder, "text encoder", "model")
    expected, optional = text_encoder_shapes(config, folder / "config.json")
    weights.check_match("text encoder", folder, expected, weights.file_shapes(files), optional)
    try:
        return phi.load(config, files, dtype)
    except Exception as exc:
        raise CheckpointError(f"{folder}: cannot load the Phi text encoder ({one_line(exc)})") from None


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: list[str], max_length: int):
    """-> (hidden (N, max_length, D) float32 on the encoder's device, unpadded lengths list)."""
    ids, mask = tokenizer.encode(list(prompts), max_length)
    lengths = mask.sum(dim=1).tolist()
    ids = ids.to(text_encoder.device)
    hidden = text_encoder(input_ids=ids).last_hidden_state
    return hidden.float(), lengths
