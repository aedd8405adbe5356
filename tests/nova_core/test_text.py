"""nova's tokenizer and text-encoder config (no transformers at run time) give what transformers
gives: the same ids and masks for the checkpoints' tokenizers, edited ones and awkward prompts, and
the same Phi settings and defaults."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from nova_core import phi, text
from nova_core.errors import CheckpointError
from nova_core.phi import PhiSettings
from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_core.checkpoints import edit_json

EOT = "<|endoftext|>"
PROMPTS = [
    "", " ", "a red car on a mountain road", "  leading and trailing  ", "line one\nline two\r\n\tthree\n\n",
    EOT, f"before{EOT}after", f"x {EOT} y {EOT}", "<|unk|> zebra", "Ünïcödé café naïve 日本語 🎉🚀 \u200b",
    "A RED circle, Blue SQUARE!", "word " * 100, "fireworks over the city", "ĠĠ literal Ġ",
    "<|im_start|>hi<|im_end|>", " red car", "zz zzz zz", "<image> and <|sep|>", "hello world", "!!!",
]
MAX_LENGTHS = (4, 16, 77)


def theirs(folder, prompts, max_length):
    """What text.py computed with transformers before (the class named by the config, pad = eos if none)."""
    import transformers

    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    name = text.TOKENIZER_CLASSES[config.get("tokenizer_class") or "CodeGenTokenizer"]
    tokenizer = getattr(transformers, name).from_pretrained(str(folder), local_files_only=True)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return batch.input_ids, batch.attention_mask, len(tokenizer)


def _config(change):
    return lambda folder: edit_json(folder / "tokenizer_config.json", change)


def _tokenizer_json(change):
    """``change(tokenizers.Tokenizer)`` edits tokenizer.json through the library."""
    def edit(folder):
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        change(backend)
        backend.save(str(folder / "tokenizer.json"))
    return edit


def _vocab_and_merges(folder):
    model = json.loads((folder / "tokenizer.json").read_text())["model"]
    (folder / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer.json").unlink()


def _added(content, **flags):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": False, **flags}


def _added_tokens(config):
    config["added_tokens_decoder"].update({
        "384": _added("<|im_start|>", special=True, lstrip=True), "385": _added(" red car", normalized=True),
        "386": _added("zz", single_word=True), "387": _added("<|im_end|>", special=True, rstrip=True)})
    config.update(additional_special_tokens=["<|im_end|>", "<|sep|>"], image_token="<image>")


def _legacy(folder):
    """No added_tokens_decoder: special_tokens_map.json and added_tokens.json count (older files)."""
    edit_json(folder / "tokenizer_config.json", lambda c: (c.pop("added_tokens_decoder"), c.pop("pad_token"),
                                                           c.update(bos_token={"__type": "AddedToken",
                                                                               "content": EOT, "lstrip": False,
                                                                               "normalized": True, "rstrip": False,
                                                                               "single_word": False})))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "pad_token": {"content": "!", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "additional_special_tokens": ["<|sep|>"], "image_token": "<image>"}))
    (folder / "added_tokens.json").write_text(json.dumps({"<|sep|>": 384, "hello world": 385}))


def _post_processor_bos(backend):
    from tokenizers import processors

    backend.post_processor = processors.TemplateProcessing(single=f"{EOT} $A:0", pair=f"{EOT} $A:0 $B:1",
                                                           special_tokens=[(EOT, 383)])


def _lowercase(backend):
    from tokenizers import normalizers

    backend.normalizer = normalizers.Lowercase()


def _json_padding(folder):
    _tokenizer_json(lambda b: (b.enable_padding(pad_id=0, pad_token="!", direction="left"),
                               b.enable_truncation(8, direction="left")))(folder)
    edit_json(folder / "tokenizer_config.json", lambda c: c.update(tokenizer_class="PreTrainedTokenizerFast") or
              c.pop("pad_token"))


def _class(name):
    return _config(lambda c: c.update(tokenizer_class=name))


VARIANTS = {
    "as-is": [],
    "prefix-space": [_config(lambda c: c.update(add_prefix_space=True))],
    "added-tokens": [_config(_added_tokens)],
    "added-tokens-fast": [_config(_added_tokens), _class("PreTrainedTokenizerFast")],
    "no-config": [lambda folder: (folder / "tokenizer_config.json").unlink()],
    "no-pad": [_config(lambda c: c.pop("pad_token"))],
    "legacy-files": [_legacy],
    "legacy-files-gpt2": [_legacy, _class("GPT2TokenizerFast")],
    "gpt2": [_class("GPT2Tokenizer")],
    "fast": [_class("PreTrainedTokenizerFast")],
    "vocab-merges": [_vocab_and_merges],
    "vocab-merges-bos": [_vocab_and_merges, _config(lambda c: c.update(add_bos_token=True))],
    "vocab-merges-gpt2-bos-eos": [_vocab_and_merges, _class("GPT2Tokenizer"),
                                  _config(lambda c: c.update(add_bos_token=True, add_eos_token=True))],
    "json-bos": [_tokenizer_json(_post_processor_bos), _config(lambda c: c.update(add_bos_token=False))],
    "json-bos-fast": [_tokenizer_json(_post_processor_bos), _class("PreTrainedTokenizerFast")],
    "json-normalizer": [_tokenizer_json(_lowercase)],  # transformers 5's CodeGen drops it, fast keeps it
    "json-normalizer-fast": [_tokenizer_json(_lowercase), _class("PreTrainedTokenizerFast")],
    "json-padding-truncation": [_json_padding],
    "left-truncation": [_config(lambda c: c.update(truncation_side="left"))],
    "split-special": [_config(lambda c: c.update(split_special_tokens=True))],
}


@pytest.fixture(scope="module")
def demo_tokenizer(tmp_path_factory):
    from nova_core.demo import components

    folder = tmp_path_factory.mktemp("demo") / "tokenizer"
    components.save_tokenizer(folder, 16)
    return folder


def check_same(folder, monkeypatch=None):
    if monkeypatch is not None:  # the comparison is only worth something if nova built it itself
        monkeypatch.setattr(text, "_transformers_tokenizer", lambda *a: pytest.fail("fell back to transformers"))
    ours = text.load_tokenizer(folder)
    for max_length in MAX_LENGTHS:
        ids, mask, size = theirs(folder, PROMPTS, max_length)
        got_ids, got_mask = ours.encode(PROMPTS, max_length)
        assert torch.equal(got_ids, ids) and torch.equal(got_mask, mask), max_length
        assert len(ours) == size
    return ours


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ids_and_masks_are_transformers(variant, tmp_path, monkeypatch):
    folder = shutil.copytree(TINY_T2V / "tokenizer", tmp_path / "tokenizer")
    for edit in VARIANTS[variant]:
        edit(folder)
    check_same(folder, monkeypatch)


def test_the_checkpoints_tokenizers_are_transformers(monkeypatch):
    for checkpoint in (TINY_T2V, TINY_T2I):
        check_same(checkpoint / "tokenizer", monkeypatch)


@pytest.mark.parametrize("edit", [None, "no-pad", "codegen"])
def test_the_demo_word_level_tokenizer_is_transformers(edit, demo_tokenizer, tmp_path, monkeypatch):
    folder = shutil.copytree(demo_tokenizer, tmp_path / "tokenizer")
    if edit == "no-pad":
        edit_json(folder / "tokenizer_config.json", lambda c: c.pop("pad_token"))
    if edit == "codegen":  # a word-level tokenizer.json under a BPE class: left to transformers
        edit_json(folder / "tokenizer_config.json", lambda c: c.update(tokenizer_class="CodeGenTokenizer"))
        check_same(folder)
        return
    check_same(folder, monkeypatch)


def test_neither_pad_nor_eos_is_refused(demo_tokenizer, tmp_path):
    folder = shutil.copytree(demo_tokenizer, tmp_path / "tokenizer")
    edit_json(folder / "tokenizer_config.json", lambda c: [c.pop(k) for k in ("pad_token", "eos_token", "bos_token")])
    with pytest.raises(CheckpointError, match="neither a pad nor an eos token"):
        text.load_tokenizer(folder)


def test_save_pretrained_reloads_the_same_in_nova_and_transformers(tmp_path):
    folder = shutil.copytree(TINY_T2V / "tokenizer", tmp_path / "source")
    _config(_added_tokens)(folder)
    tokenizer = text.load_tokenizer(folder)
    tokenizer.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(folder)  # onto its own files: nothing to copy
    ids, mask = tokenizer.encode(PROMPTS, 16)
    again, _ = text.load_tokenizer(tmp_path / "saved").encode(PROMPTS, 16)
    assert torch.equal(again, ids)
    their_ids, their_mask, size = theirs(tmp_path / "saved", PROMPTS, 16)
    assert torch.equal(their_ids, ids) and torch.equal(their_mask, mask) and size == len(tokenizer)
    assert tokenizer.encode([], 16)[0].shape == (0, 16)


# ----------------------------------------------------------------------------- text encoder config
READ = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "hidden_act", "layer_norm_eps", "qk_layernorm", "max_position_embeddings",
        "resid_pdrop", "embd_pdrop", "attention_dropout")


def settings(config) -> dict:
    """Everything nova_core.phi reads from a config."""
    return {**{k: getattr(config, k) for k in READ}, "rope": phi.rope_settings(config),
            "rotary_dims": phi.rotary_dims(config)}


def _drop(key):
    return lambda c: c.pop(key)


REQUIRED = {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "model_type"}
CONFIG_EDITS = {
    **{f"no-{k}": _drop(k) for k in json.loads((TINY_T2V / "text_encoder" / "config.json").read_text())
       if k not in REQUIRED},
    "as-is": lambda c: None,
    "kv-heads-null": lambda c: c.update(num_key_value_heads=None),
    "kv-heads-2": lambda c: c.update(num_key_value_heads=2),
    "rope-parameters": lambda c: (c.pop("rope_theta"), c.pop("partial_rotary_factor"), c.pop("rope_scaling"),
                                  c.update(rope_parameters={"rope_type": "default", "rope_theta": 500.0,
                                                            "partial_rotary_factor": 0.25})),
    "rope-parameters-theta-only": lambda c: c.update(rope_parameters={"rope_type": "default", "rope_theta": 50.0}),
    "rope-scaling-default": lambda c: c.update(rope_scaling={"type": "default", "partial_rotary_factor": 0.5}),
    "other-values": lambda c: c.update(hidden_act="gelu_new", layer_norm_eps=1e-6, attention_dropout=None,
                                       resid_pdrop=0.1, qk_layernorm=False),
}


@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_text_encoder_config_is_transformers(edit, tmp_path):
    from transformers import PhiConfig

    folder = shutil.copytree(TINY_T2V / "text_encoder", tmp_path / "text_encoder",
                             ignore=shutil.ignore_patterns("*.safetensors"))
    edit_json(folder / "config.json", CONFIG_EDITS[edit])
    config = json.loads((folder / "config.json").read_text())
    assert settings(text.read_text_encoder_config(folder)) == settings(PhiConfig.from_dict(config))


def test_the_checkpoints_configs_and_the_defaults_are_transformers():
    from transformers import PhiConfig

    for checkpoint in (TINY_T2V, TINY_T2I):
        folder = checkpoint / "text_encoder"
        ours = text.read_text_encoder_config(folder)
        assert settings(ours) == settings(PhiConfig.from_pretrained(str(folder)))
        assert PhiSettings.from_dict(ours.to_dict()) == ours  # what save_text_encoder writes reads back
        assert settings(PhiConfig.from_dict(ours.to_dict())) == settings(ours)
    assert settings(PhiSettings()) == settings(PhiConfig())
    for name in ("initializer_range", "use_cache", "tie_word_embeddings", "bos_token_id", "eos_token_id",
                 "pad_token_id"):
        assert getattr(PhiSettings(), name) == getattr(PhiConfig(), name), name


@pytest.mark.parametrize("change, message", [
    (dict(rope_scaling={"type": "linear", "factor": 2.0}), "rope type 'linear'"),
    (dict(rope_parameters={"rope_type": "default", "rope_theta": -1.0}), "rope_theta must be > 0"),
    (dict(rope_scaling=[1, 2]), "must be an object"),
    (dict(hidden_act=5), "hidden_act must be a string"),
    (dict(qk_layernorm="no"), "qk_layernorm must be true or false"),
    (dict(qk_layernorm=True), "qk_layernorm is not Phi-2's"),
    (dict(hidden_act="relu"), "activation 'relu'"),
])
def test_what_nova_does_not_compute_is_refused(change, message, tmp_path):
    folder = shutil.copytree(TINY_T2V / "text_encoder", tmp_path / "text_encoder")
    edit_json(folder / "config.json", lambda c: c.update(change))
    with pytest.raises(CheckpointError, match=message):
        text.load_text_encoder(folder, torch.float32)


def test_the_prompt_path_does_not_import_transformers():
    from tests.nova_cli.conftest import subprocess_env

    code = ("import sys, torch; from nova_core import text; "
            f"t = text.load_tokenizer({str(TINY_T2V / 'tokenizer')!r}); "
            f"c = text.read_text_encoder_config({str(TINY_T2V / 'text_encoder')!r}); "
            f"e = text.load_text_encoder({str(TINY_T2V / 'text_encoder')!r}, torch.float32); "
            "h, n = text.encode_prompts(t, e, ['a dog on the beach'], 16); assert n == [9], n; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
