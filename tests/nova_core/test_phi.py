"""nova's Phi decoder computes what transformers' PhiModel computes, from the same files."""

from __future__ import annotations

import pytest
import torch

from nova_core import phi
from nova_core.errors import CheckpointError
from nova_core.text import load_text_encoder
from tests.conftest import TINY_T2I, TINY_T2V


def reference(config, state=None):
    from transformers import PhiModel

    model = PhiModel(config).eval()
    if state is not None:
        model.load_state_dict(state)
    return model


@pytest.mark.parametrize("checkpoint", [TINY_T2V, TINY_T2I], ids=["tiny-t2v", "tiny-t2i"])
def test_the_checkpoints_text_encoder_matches_transformers(checkpoint):
    from transformers import PhiModel

    folder = checkpoint / "text_encoder"
    ours = load_text_encoder(folder, torch.float32)
    theirs = PhiModel.from_pretrained(str(folder)).eval()
    ids = torch.randint(ours.config.vocab_size, (3, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(input_ids=ids).last_hidden_state, theirs(input_ids=ids).last_hidden_state
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [
    dict(hidden_act="gelu_new", partial_rotary_factor=0.4),
    dict(hidden_act="gelu_pytorch_tanh", partial_rotary_factor=1.0),
    dict(hidden_act="gelu", partial_rotary_factor=0.5, num_key_value_heads=2, rope_theta=500.0),
])
@pytest.mark.parametrize("settings", [False, True], ids=["PhiConfig", "PhiSettings"])
def test_random_phi_configs_match_transformers(variant, settings):
    from transformers import PhiConfig

    values = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  max_position_embeddings=32, **variant)
    torch.manual_seed(0)
    theirs = reference(PhiConfig(**values))
    ours = phi.PhiEncoder(phi.PhiSettings(**values) if settings else PhiConfig(**values)).eval()
    ours.load_state_dict(theirs.state_dict())
    ids = torch.randint(97, (2, 20))
    with torch.no_grad():
        a, b = ours(input_ids=ids).last_hidden_state, theirs(input_ids=ids).last_hidden_state
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert set(ours.state_dict()) == set(theirs.state_dict())


def test_what_it_does_not_compute_is_refused():
    from transformers import PhiConfig

    with pytest.raises(CheckpointError, match="qk_layernorm"):
        phi.PhiEncoder(PhiConfig(vocab_size=10, hidden_size=16, num_attention_heads=2, qk_layernorm=True))
    with pytest.raises(CheckpointError, match="activation 'relu'"):
        phi.PhiEncoder(PhiConfig(vocab_size=10, hidden_size=16, num_attention_heads=2, hidden_act="relu"))
