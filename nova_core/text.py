"""Prompt -> Phi hidden states, the way NOVA was trained.

Each prompt is tokenized to exactly ``max_length`` ids (truncated, right-padded with
``<|endoftext|>``) and Phi runs on the padded ids without an attention mask: its attention is
causal, so real tokens never see the padding. Only the first ``len`` rows are kept; the
transformer fills the rest with its learned padding rows (``TextEmbed.pad``).
"""

from __future__ import annotations

import torch


def load_tokenizer(folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_text_encoder(folder, dtype):
    """Phi's decoder stack only (``PhiModel``): NOVA never uses the LM head, so it is not loaded."""
    import transformers
    from transformers import PhiModel

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the skipped lm_head is expected, not news
    transformers.logging.disable_progress_bar()
    try:
        model = PhiModel.from_pretrained(str(folder), **{key: dtype})
    finally:
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.enable_progress_bar()
    return model.eval().requires_grad_(False)


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: list[str], max_length: int):
    """-> (hidden (N, max_length, D) float32 on the encoder's device, unpadded lengths list)."""
    batch = tokenizer(
        list(prompts), padding="max_length", max_length=max_length, truncation=True,
        return_tensors="pt",
    )
    lengths = batch.attention_mask.sum(dim=1).tolist()
    ids = batch.input_ids.to(text_encoder.device)
    hidden = text_encoder(input_ids=ids).last_hidden_state
    return hidden.float(), lengths
