"""nova's Phi decoder computes what transformers' PhiModel computes, from the same files."""

from __future__ import annotations

import pytest
import torch

from nova_core import phi
from nova_core.errors import CheckpointError
from nova_core.text import load_text_encoder, read_text_encoder_config
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
    theirs = PhiModel.from_pretrained(str(folder), config=read_text_encoder_config(folder)).eval()
    ids = torch.randint(ours.config.vocab_size, (3, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = ours(input_ids=ids).last_hidden_state, theirs(input_ids=ids).last_hidden_state
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [
    dict(hidden_act="gelu_new", partial_rotary_factor=0.4),
    dict(hidden_act="gelu_pytorch_tanh", partial_rotary_factor=1.0),
    dict(hidden_act="gelu", partial_rotary_factor=0.5, num_key_value_heads=2, rope_theta=500.0),
])
def test_random_phi_configs_match_transformers(variant):
    from transformers import PhiConfig

    config = PhiConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                       num_attention_heads=4, max_position_embeddings=32, **variant)
    torch.manual_seed(0)
    theirs = reference(config)
    ours = phi.PhiEncoder(config).eval()
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


def test_loading_does_not_import_transformers_models():
    # The point of nova_core.phi: a run's start-up skips transformers' model machinery.
    import subprocess
    import sys

    code = ("import sys, torch; from nova_core.text import load_text_encoder; "
            f"load_text_encoder({str(TINY_T2V / 'text_encoder')!r}, torch.float32); "
            "print(sorted(m for m in sys.modules if m.startswith('transformers.models.phi.modeling') "
            "or m == 'transformers.modeling_utils'))")
    from tests.nova_cli.conftest import subprocess_env

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
