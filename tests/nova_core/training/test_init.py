import pytest
import torch

from nova_core.training.init import initialise
from nova_core.transformer import NOVATransformer3DModel

CONFIG = dict(image_dim=4, image_size=[64, 64], image_stride=8, text_token_dim=16, text_token_len=4,
              image_base_size=[4, 4], video_base_size=[1, 2, 2], arch=["vit_d1w32", "vit_d2w32", "mlp_d2w32"])


def head_output(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    head = model.image_decoder
    x = torch.randn(2, 4, 8, 8, generator=g)
    z = torch.randn(2, 16, 32, generator=g)
    return head(x, torch.tensor([10, 900]), z)


def test_mar_init_starts_the_head_as_zero_with_identity_blocks():
    torch.manual_seed(0)
    model = NOVATransformer3DModel(**CONFIG)
    assert head_output(model).abs().max() > 0
    initialise(model, "mar")
    assert head_output(model).abs().max() == 0
    head = model.image_decoder
    tokens, cond = torch.randn(3, 5, 32), torch.randn(3, 5, 32)
    for block in head.blocks:
        torch.testing.assert_close(block(tokens, cond), tokens)  # gate 0: the residual only
    # everything else is Xavier with zero biases, trainable from step one
    linears = [m for m in model.image_encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.bias is None or m.bias.abs().max() == 0 for m in linears)
    bound = (6 / (linears[0].in_features + linears[0].out_features)) ** 0.5
    assert linears[0].weight.abs().max() <= bound and linears[0].weight.std() > bound / 3


def test_mar_init_lets_the_head_learn():
    """Zeroed modulations and output still receive gradients (the output layer's first)."""
    torch.manual_seed(0)
    model = NOVATransformer3DModel(**CONFIG)
    initialise(model, "mar")
    (head_output(model) - 1).pow(2).sum().backward()
    assert model.image_decoder.head.weight.grad.abs().max() > 0


def test_default_init_is_untouched_and_unknown_kind_refused():
    torch.manual_seed(0)
    model = NOVATransformer3DModel(**CONFIG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initialise(model, "default")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        initialise(model, "xavier")
