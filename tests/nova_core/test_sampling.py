"""The sampling loop's parts: cosine schedule, token order, guidance, KV cache."""

import numpy as np
import pytest
import torch

from nova_core.layers import Attention, KVCache
from nova_core.sampling import Guidance, mask_schedule, token_order


@pytest.mark.parametrize("steps, tokens", [(64, 1440), (64, 4096), (6, 24), (128, 1024), (1, 16)])
def test_mask_schedule_reveals_every_token_once(steps, tokens):
    preds = mask_schedule(steps, tokens)
    assert len(preds) == steps and preds.sum() == tokens and (preds >= 0).all()


def test_mask_schedule_examples():
    assert mask_schedule(2, 2).tolist() == [1, 1]  # remaining round(2 cos(pi/4)) = 1
    assert mask_schedule(64, 4).tolist().count(0) == 60  # zero steps stay in the schedule
    assert mask_schedule(6, 24).tolist() == [1, 2, 4, 5, 6, 6]  # cases/t2v num_preds


def test_token_order_is_a_permutation_drawn_once():
    g = torch.Generator().manual_seed(0)
    order = token_order(3, 10, g)
    assert order.shape == (3, 10, 1)
    assert all(sorted(row.flatten().tolist()) == list(range(10)) for row in order)
    expected = torch.rand((3, 10, 1), generator=torch.Generator().manual_seed(0)).argsort(dim=1)
    assert torch.equal(order, expected)


def test_guidance_combine_and_renorm():
    cond, uncond = torch.full((1, 2, 3), 2.0), torch.ones(1, 2, 3)
    out = torch.cat([cond, uncond])
    assert torch.allclose(Guidance(scale=5).combine(out), torch.full((1, 2, 3), 6.0))
    renormed = Guidance(scale=5, renorm=0.5).combine(out)
    # ||guided|| = 3 ||cond||: scaled by clamp(1/3, 0.5, 1) = 0.5
    assert torch.allclose(renormed, torch.full((1, 2, 3), 3.0))
    assert Guidance(scale=1).expand(cond).shape == cond.shape
    assert Guidance(scale=2).expand(cond).shape == (2, 2, 3)


def test_kv_cache_attention_equals_full_block_causal_attention():
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    prefix, frames = torch.randn(2, 5, 32), [torch.randn(2, 3, 32) for _ in range(3)]
    from nova_core.transformer import block_causal_mask

    full = attn(torch.cat([prefix] + frames, dim=1), attn_mask=block_causal_mask(5, 3, 3))
    cache = KVCache(1, 2, 4, 8, capacity=5 + 9)
    outs = [attn(torch.cat([prefix, frames[0]], 1), cache.layer(0))]
    cache.commit(8)
    for f in frames[1:]:
        outs.append(attn(f, cache.layer(0)))
        cache.commit(3)
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-6, rtol=1e-6)
    assert cache.length == 14


def test_kv_cache_refuses_to_overflow():
    cache = KVCache(1, 1, 1, 4, capacity=3)
    with pytest.raises(RuntimeError, match="capacity"):
        cache.write(0, torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
