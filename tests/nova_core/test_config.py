import pytest

from nova_core.config import geometry, parse_mlp, parse_vit
from nova_core.errors import CheckpointError


def test_released_names_use_the_table():
    assert parse_vit("vit_d16w1536").heads == 16  # not 1536 // 32
    assert parse_vit("vit_d32w768").heads == 12
    assert parse_mlp("mlp_d3w1280").width == 1280


def test_generic_names_follow_the_tiny_rule():
    arch = parse_vit("vit_d4w64")
    assert (arch.depth, arch.width, arch.heads) == (4, 64, 2)
    assert parse_mlp("mlp_d2w96").depth == 2


@pytest.mark.parametrize("name", ["vit_d4w60", "foo", "mlp_d2w96", "vit_d0w64", ""])
def test_unknown_vit_names_are_rejected(name):
    with pytest.raises(CheckpointError, match="arch"):
        parse_vit(name)


def test_unknown_head_name_is_rejected():
    with pytest.raises(CheckpointError, match="mlp_d3w64x"):
        parse_mlp("mlp_d3w64x")


def _tiny(**over):
    cfg = dict(image_dim=4, image_size=[64, 96], image_stride=8, text_token_dim=80, text_token_len=16,
               image_base_size=[4, 6], video_base_size=[4, 2, 3], video_mixer_rank=8,
               rotary_pos_embed=False, arch=["vit_d2w64", "vit_d4w64", "mlp_d2w96"])
    cfg.update(over)
    return geometry(**cfg)


def test_geometry_of_tiny_t2v():
    geo = _tiny()
    assert geo.latent_size == (8, 12) and geo.patch_size == 2 and geo.video_patch_size == 4
    assert geo.num_tokens == 24 and geo.num_video_tokens == 6 and geo.has_motion
    assert geo.pixel_size == (64, 96)


@pytest.mark.parametrize("over, message", [
    ({"image_base_size": [5, 6]}, "image_base_size"),
    ({"video_base_size": [4, 2, 2]}, "video_base_size"),
    ({"rotary_pos_embed": True}, "rotary"),
    ({"text_token_dim": None}, "text_token_dim"),
    ({"arch": ["vit_d2w64", "vit_d4w64"]}, "three"),
])
def test_inconsistent_configs_are_rejected(over, message):
    with pytest.raises(CheckpointError, match=message):
        _tiny(**over)
