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


def test_skip_init_starts_every_encoder_block_as_the_identity_and_the_condition_as_the_anchor():
    torch.manual_seed(0)
    model = NOVATransformer3DModel(**dict(CONFIG, video_base_size=[3, 2, 2], video_mixer_rank=4))
    initialise(model, "skip")
    assert head_output(model).abs().max() == 0  # mar's head as well
    tokens = torch.randn(3, 5, 32)
    for block in [*model.video_encoder.blocks, *model.image_encoder.blocks]:
        torch.testing.assert_close(block(tokens), tokens)
    anchor, current = torch.randn(2, 1, 4, 32), torch.randn(2, 2, 4, 32)
    torch.testing.assert_close(model.video_encoder.mixer(anchor, current), anchor.expand_as(current))
    # the zeroed gains still learn: a loss on a block's output reaches them
    block = model.image_encoder.blocks[0]
    (block(tokens) - 1).pow(2).sum().backward()
    assert block.norm1.weight.grad.abs().max() > 0 and block.norm2.weight.grad.abs().max() > 0


def test_aligned_init_starts_a_head_on_the_condition_token_over_each_token():
    from nova_core.demo import components
    from tests.nova_cli.demo.oracle import alignment

    torch.manual_seed(0)
    config = components.transformer_config(components.ComponentSettings())
    skip, aligned = NOVATransformer3DModel.from_config(config).eval(), NOVATransformer3DModel.from_config(config).eval()
    aligned.load_state_dict(skip.state_dict())
    torch.manual_seed(1)
    initialise(skip, "skip")
    torch.manual_seed(1)  # the same Xavier draws
    initialise(aligned, "aligned")
    latents, prefix = torch.randn(1, 16, 9, 12, 20), skip.prefix(torch.randn(1, 16, 64), torch.ones(1))
    assert max(alignment(skip, latents, prefix)) < 0.2  # 1/15 would be uniform
    assert min(alignment(aligned, latents, prefix)) > 0.8
    # only the query and key rows of head 0 in the second-half spatial blocks differ from skip
    changed = {k for k, v in aligned.state_dict().items() if not torch.equal(v, skip.state_dict()[k])}
    assert changed == {f"image_encoder.blocks.{i}.attn.qkv.{p}" for i in (2, 3) for p in ("weight",)}
    torch.manual_seed(0)
    fresh = NOVATransformer3DModel.from_config(config).eval()
    torch.manual_seed(1)
    initialise(fresh, "aligned")
    assert all(torch.equal(v, aligned.state_dict()[k]) for k, v in fresh.state_dict().items())  # seeded
