"""The prompt tokenizer on the ``tokenizers`` library alone.

Importing transformers' tokenizer classes costs ~0.8 s of CPU per process, yet all they do for
NOVA's prompts is hand the text to a ``tokenizers.Tokenizer``. :func:`build` makes that object
from a checkpoint's files the way transformers 5 does for the classes nova accepts
(``CodeGenTokenizer(Fast)``, ``GPT2Tokenizer(Fast)``, ``PreTrainedTokenizerFast``): the same model,
pre-tokenizer and post-processor, and the same added and special tokens added in the same order
(a new token's id depends on it). Each step names the transformers code it follows; tests compare
ids and masks with transformers over edited files and awkward prompts. Files it does not rebuild
raise :class:`Unsupported`, and :mod:`nova_core.text` builds those with transformers instead.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

SPECIAL = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
EOT = "<|endoftext|>"  # CodeGen's and GPT-2's default bos/eos/unk


class Unsupported(Exception):
    """Files :func:`build` does not rebuild exactly (transformers builds them)."""


class MissingPad(ValueError):
    """Neither a pad nor an eos token to pad prompts with."""


class PromptTokenizer:
    """Prompts -> right-padded, truncated ids, as transformers' ``tokenizer(prompts,
    padding="max_length", max_length=n, truncation=True)`` gives them (it calls the same backend)."""

    padding_side = "right"

    def __init__(self, backend: Tokenizer, pad_token: str, eos_token: str | None, truncation_side="right",
                 files=()):
        self.backend, self.pad_token, self.eos_token = backend, pad_token, eos_token
        self.truncation_side, self.files = truncation_side, tuple(files)
        self.pad_id = backend.token_to_id(pad_token)
        if self.pad_id is None:
            raise ValueError(f"the pad token {pad_token!r} is not in the vocabulary")

    def __len__(self) -> int:
        """Vocabulary size with the added tokens (transformers' ``len(tokenizer)``)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def ids(self, text: str) -> list[int]:
        """One text's ids, neither padded nor truncated (special tokens added as for prompts)."""
        self.backend.no_truncation()
        self.backend.no_padding()
        return self.backend.encode(text).ids

    def encode(self, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (ids, attention mask), both (N, max_length) int64."""
        self.backend.enable_truncation(max_length, stride=0, strategy="longest_first", direction=self.truncation_side)
        self.backend.enable_padding(direction="right", pad_id=self.pad_id, pad_type_id=0, pad_token=self.pad_token,
                                    length=max_length, pad_to_multiple_of=None)
        rows = self.backend.encode_batch(list(prompts), add_special_tokens=True)
        ids = torch.tensor([r.ids for r in rows], dtype=torch.long).reshape(len(rows), max_length)
        mask = torch.tensor([r.attention_mask for r in rows], dtype=torch.long).reshape(len(rows), max_length)
        return ids, mask

    def save_pretrained(self, folder) -> None:
        """The source files, copied: nova and transformers read them back as they read the source."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for file in self.files:
            target = folder / file.name
            if not (target.exists() and target.samefile(file)):
                shutil.copyfile(file, target)


def build(folder: Path, cls: str, files: dict[str, dict]) -> PromptTokenizer:
    """The tokenizer of ``folder`` as transformers' ``cls.from_pretrained`` builds it; ``files``
    holds the folder's JSON files, already read and checked, by name."""
    config = files.get("tokenizer_config.json", {})
    data = files.get("tokenizer.json")
    if config.get("init_inputs") or config.get("fix_mistral_regex"):
        raise Unsupported("init_inputs / fix_mistral_regex")
    kwargs = _init_kwargs(config, data, files.get("special_tokens_map.json"), files.get("added_tokens.json"))
    backend, post, padding, truncation = _backend(folder, cls, kwargs, data)

    # TokenizersBackend.__init__: settings saved in tokenizer.json give defaults
    if truncation is not None:
        kwargs.setdefault("truncation_side", truncation["direction"])
    if padding is not None:
        kwargs.setdefault("pad_token", padding["pad_token"])
    add_bos, add_eos = kwargs.get("add_bos_token", False), kwargs.get("add_eos_token", False)
    if post:
        backend.post_processor = post
    template = "add_bos_token" in kwargs or "add_eos_token" in kwargs or backend.post_processor is None
    named, extra = _special_tokens(kwargs)
    for side in ("padding_side", "truncation_side"):
        if kwargs.get(side, "right") not in ("right", "left"):
            raise ValueError(f"{side} must be 'right' or 'left', got {kwargs[side]!r}")
    backend.encode_special_tokens = kwargs.get("split_special_tokens", False)
    _add_tokens(backend, kwargs.get("added_tokens_decoder", {}), named, extra)
    if template:
        _template(backend, named, add_bos, add_eos)

    pad, eos = (None if named[k] is None else str(named[k]) for k in ("pad_token", "eos_token"))
    if pad is None and eos is None:
        raise MissingPad()
    return PromptTokenizer(backend, pad or eos, eos, kwargs.get("truncation_side", "right"), source_files(folder))


def source_files(folder: Path) -> list[Path]:
    """The files a tokenizer is read from (what save_pretrained copies)."""
    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
             "config.json", "vocab.json", "merges.txt")
    return [folder / n for n in names if (folder / n).is_file()]


def _init_kwargs(config: dict, data: dict | None, special_map: dict | None, added: dict | None) -> dict:
    """The keyword arguments ``PreTrainedTokenizerBase._from_pretrained`` builds from the files."""
    kwargs = copy.deepcopy(config)
    kwargs.pop("tokenizer_class", None)
    kwargs.pop("init_inputs", None)
    if data is not None:
        kwargs.pop("add_bos_token", None)
        kwargs.pop("add_eos_token", None)
    if "additional_special_tokens" in kwargs and not kwargs.get("extra_special_tokens"):
        kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
    specific = {k: kwargs.pop(k) for k in list(kwargs)
                if k not in SPECIAL and k.endswith("_token") and isinstance(kwargs[k], str)}
    if isinstance(kwargs.get("extra_special_tokens"), dict):
        specific.update(kwargs.pop("extra_special_tokens"))
    if specific:
        kwargs["model_specific_special_tokens"] = specific

    decoder, by_text = {}, {}
    if "added_tokens_decoder" in kwargs:
        for index, token in kwargs["added_tokens_decoder"].items():
            token = AddedToken(**token) if isinstance(token, dict) else token
            if not isinstance(token, AddedToken):
                raise TypeError(f"added_tokens_decoder holds {token!r}")
            decoder[int(index)] = by_text[str(token)] = token
    else:  # legacy files: special_tokens_map.json, added_tokens.json, tokenizer.json's added tokens
        for key, value in copy.deepcopy(special_map or {}).items():
            if isinstance(value, dict) and key != "extra_special_tokens":
                value.pop("special", None)
                value = AddedToken(**value, special=True)
            elif key == "extra_special_tokens" and isinstance(value, list):
                existing = list(kwargs.get("extra_special_tokens") or [])
                for token in value:
                    token = AddedToken(**token, special=True) if isinstance(token, dict) else token
                    if token not in existing:
                        existing.append(token)
                value = existing
            kwargs[key] = value
        if special_map is not None and isinstance(kwargs.get("extra_special_tokens"), dict):
            kwargs.setdefault("model_specific_special_tokens", {}).update(kwargs.pop("extra_special_tokens"))
        if added is not None:
            specials = {str(kwargs[k]) for k in SPECIAL if kwargs.get(k)}
            specials.update(str(t) for t in (kwargs.get("extra_special_tokens") or []))
            for text, index in added.items():
                special = text in specials
                decoder[index] = by_text[text] = AddedToken(text, rstrip=False, lstrip=False, normalized=not special,
                                                            special=special)
        if data is not None:
            for token in copy.deepcopy(data["added_tokens"]):
                index = token.pop("id")
                decoder[index] = AddedToken(**token)
                by_text[str(decoder[index])] = decoder[index]
    kwargs["added_tokens_decoder"] = decoder
    kwargs = _added_token_objects(kwargs)
    for key in SPECIAL:
        if key in kwargs and by_text and kwargs[key] is not None:
            kwargs[key] = by_text.get(str(kwargs[key]), kwargs[key])
    return kwargs


def _added_token_objects(value):
    """``{"__type": "AddedToken", ...}`` (older configs) -> AddedToken, anywhere (convert_added_tokens)."""
    if isinstance(value, dict) and value.get("__type") == "AddedToken":
        return AddedToken(**{k: v for k, v in value.items() if k != "__type"})
    if isinstance(value, (list, tuple)):
        return [_added_token_objects(v) for v in value]
    if isinstance(value, dict):
        return {k: _added_token_objects(v) for k, v in value.items()}
    return value


def _backend(folder: Path, cls: str, kwargs: dict, data: dict | None):
    """-> (backend, post-processor, padding, truncation) as ``convert_to_native_format`` and the
    class's ``__init__`` make them: PreTrainedTokenizerFast reads tokenizer.json whole; CodeGen
    and GPT-2 rebuild a byte-level BPE from its vocabulary and merges (or from vocab.json and
    merges.txt) and keep only its post-processor, padding and truncation."""
    if cls == "PreTrainedTokenizerFast":
        if data is None:
            raise Unsupported("PreTrainedTokenizerFast without tokenizer.json")
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return backend, None, backend.padding, backend.truncation
    if data is None:
        merges = folder / "merges.txt"
        return _byte_level_bpe(cls, str(folder / "vocab.json"), str(merges) if merges.is_file() else None,
                               kwargs), None, None, None
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise Unsupported(f"{cls} over a tokenizer.json model that is not BPE")
    shell = Tokenizer.from_str(json.dumps({**data, "model": {**model, "vocab": {}, "merges": []}, "added_tokens": []}))
    vocab = model.get("vocab")
    if isinstance(vocab, list):
        vocab = {t[0] if isinstance(t, list) else t: i for i, t in enumerate(vocab)}
    merges = None
    if "merges" in model:
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return _byte_level_bpe(cls, vocab, merges, kwargs), shell.post_processor, shell.padding, shell.truncation


def _byte_level_bpe(cls: str, vocab, merges, kwargs: dict) -> Tokenizer:
    """CodeGenTokenizer / GPT2Tokenizer ``__init__``: the backend and the named tokens' defaults."""
    backend = Tokenizer(BPE(vocab=vocab if vocab is not None else {}, merges=merges or [], dropout=None,
                            continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=kwargs.get("add_prefix_space", False))
    backend.decoder = decoders.ByteLevel()
    if cls == "CodeGenTokenizerFast":
        backend.post_processor = processors.ByteLevel(add_prefix_space=True, use_regex=True, trim_offsets=False)
    for key in ("unk_token", "bos_token", "eos_token"):
        kwargs.setdefault(key, EOT)
    kwargs.setdefault("pad_token", None)
    return backend


def _special_tokens(kwargs: dict) -> tuple[dict, list]:
    """Named (incl. model-specific) and extra special tokens, as ``PreTrainedTokenizerBase.__init__``
    collects them (the named ones in this order)."""
    if "additional_special_tokens" in kwargs and "extra_special_tokens" not in kwargs:
        kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
    named, extra, found = dict.fromkeys(SPECIAL), [], {}
    explicit = kwargs.pop("model_specific_special_tokens", None) or {}
    if not isinstance(explicit, dict):
        raise TypeError("model_specific_special_tokens must be a dictionary")
    for key in list(kwargs):
        if key in SPECIAL or key == "extra_special_tokens":
            value = kwargs.pop(key)
            if value is None:
                continue
            if key in SPECIAL:
                named[key] = _token(key, value)
            elif isinstance(value, dict):
                named.update({k: _token(k, v) for k, v in value.items()})
            elif isinstance(value, (list, tuple)):
                extra = list(value)
            else:
                raise TypeError("extra_special_tokens must be a list or a dict")
        elif key.endswith("_token") and isinstance(kwargs[key], (str, AddedToken)):
            found[key] = kwargs.pop(key)
    named.update({k: _token(k, v) for k, v in {**found, **explicit}.items()})
    return named, extra


def _token(key: str, value):
    if not isinstance(value, (str, AddedToken)):
        raise TypeError(f"{key} must be a string or an added token, got {value!r}")
    return value


def _add_tokens(backend: Tokenizer, decoder: dict, named: dict, extra: list) -> None:
    """The added tokens, then the special tokens the backend lacks (TokenizersBackend.__init__)."""
    tokens = [token for _, token in sorted(decoder.items(), key=lambda item: item[0])]
    known = [t.content for _, t in sorted(backend.get_added_tokens_decoder().items())] + [str(t) for t in tokens]
    for token in [*named.values(), *extra]:
        if token is not None and str(token) not in known and token not in tokens:
            tokens.append(token)
    names = [str(t) for t in named.values() if t]
    for i, token in enumerate(tokens):
        if isinstance(token, str):
            tokens[i] = AddedToken(token, special=True)
        elif isinstance(token, AddedToken) and not token.special and str(token) in names:
            token.special = True
    if tokens:
        backend.add_tokens(tokens)


def _template(backend: Tokenizer, named: dict, add_bos, add_eos) -> None:
    """``update_post_processor``: bos/eos around each text only where the config asks for them."""
    bos, eos = (None if named[k] is None else str(named[k]) for k in ("bos_token", "eos_token"))
    add_bos, add_eos = add_bos and bos is not None, add_eos and eos is not None
    unk = None if named["unk_token"] is None else backend.token_to_id(str(named["unk_token"]))
    single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
    pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
    specials = [(t, backend.token_to_id(t) if backend.token_to_id(t) is not None else unk)
                for t, on in ((bos, add_bos), (eos, add_eos)) if on]
    backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
