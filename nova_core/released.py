"""What is known about the released checkpoints without downloading them, and the tiny test configs.

Transformer configs are the Hub's own (transcribed; the d48w768/d48w1024-sdxl1024 and sd512 ones
are reconstructed from the official repo's training configs). Used by ``nova bench`` (random
weights of the real shapes) and ``nova models``. ``params`` is the transformer's exact parameter
count (the one BAAI's model zoo quotes, as :func:`zoo_size`), the sum of the released state dict's
shapes.
"""

from __future__ import annotations

import math


def zoo_size(params: int) -> str:
    """The model zoo's label: billions cut (not rounded) to one decimal, 365,256,720 -> "0.3B"."""
    return f"{math.floor(params / 1e8) / 10:.1f}B"

_VIDEO_VAE = dict(
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock3D", "DownEncoderBlock3D"],
    up_block_types=["UpDecoderBlock3D"] * 4, latent_channels=4, layers_per_block=2, scaling_factor=0.18215,
)
_IMAGE_VAE = dict(
    block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=2, scaling_factor=0.13025,
)
_PHI2 = dict(vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
             num_attention_heads=32, partial_rotary_factor=0.4, hidden_act="gelu_pytorch_tanh",
             max_position_embeddings=2048)
_TINY_PHI = dict(vocab_size=400, hidden_size=80, intermediate_size=320, num_hidden_layers=2,
                 num_attention_heads=4, partial_rotary_factor=0.4, hidden_act="gelu_pytorch_tanh",
                 max_position_embeddings=64)


def _image(width, head, size=1024, base=64):
    return dict(image_dim=4, image_size=size, image_stride=8, text_token_dim=2560, text_token_len=256,
                video_base_size=[1, base // 2, base // 2], image_base_size=[base, base],
                arch=[f"vit_d16w{width}", f"vit_d32w{width}", head])


CHECKPOINTS = {
    "BAAI/nova-d48w1024-osp480": dict(
        kind="video", resolution="768x480", notes="t2v, i2v, extend; 33 frames", params=645_505_040, scheduler="DDPMScheduler", vae="AutoencoderKLOpenSora",
        transformer=dict(image_dim=4, image_size=[480, 768], image_stride=8, text_token_dim=2560,
                         text_token_len=256, video_mixer_rank=24, video_base_size=[16, 15, 24],
                         image_base_size=[30, 48], arch=["vit_d16w1024", "vit_d32w1024", "mlp_d3w1280"]),
        vae_config=_VIDEO_VAE, text_encoder=_PHI2),
    "BAAI/nova-d48w768-sdxl1024": dict(
        kind="image", resolution="1024x1024", notes="", params=365_256_720, scheduler="FlowMatchEulerDiscreteScheduler", vae="AutoencoderKL",
        transformer=_image(768, "mlp_d6w768"), vae_config=_IMAGE_VAE, text_encoder=_PHI2),
    "BAAI/nova-d48w1024-sdxl1024": dict(
        kind="image", resolution="1024x1024", notes="the t2i default", params=647_004_176, scheduler="FlowMatchEulerDiscreteScheduler", vae="AutoencoderKL",
        transformer=_image(1024, "mlp_d6w1024"), vae_config=_IMAGE_VAE, text_encoder=_PHI2),
    "BAAI/nova-d48w1536-sdxl1024": dict(
        kind="image", resolution="1024x1024", notes="", params=1_451_147_280, scheduler="FlowMatchEulerDiscreteScheduler", vae="AutoencoderKL",
        transformer=_image(1536, "mlp_d6w1536"), vae_config=_IMAGE_VAE, text_encoder=_PHI2),
    "BAAI/nova-d48w1024-sd512": dict(
        kind="image", resolution="512x512", notes="", params=647_004_176, scheduler="DDPMScheduler", vae="AutoencoderKL",
        transformer=_image(1024, "mlp_d6w1024", size=512, base=32),
        vae_config=dict(_IMAGE_VAE, scaling_factor=0.18215), text_encoder=_PHI2),
}

# The shapes of the tiny test checkpoints (shared/reference/tiny-*), for benchmarks on the CPU.
TINY = {
    "tiny-t2v": dict(
        kind="video", resolution="96x64", scheduler="DDPMScheduler", vae="AutoencoderKLOpenSora",
        transformer=dict(image_dim=4, image_size=[64, 96], image_stride=8, text_token_dim=80, text_token_len=16,
                         video_mixer_rank=8, video_base_size=[4, 2, 3], image_base_size=[4, 6],
                         arch=["vit_d2w64", "vit_d4w64", "mlp_d2w96"]),
        vae_config=dict(_VIDEO_VAE, block_out_channels=[32, 32, 32, 64], layers_per_block=1),
        text_encoder=_TINY_PHI),
    "tiny-t2i": dict(
        kind="image", resolution="64x64", scheduler="FlowMatchEulerDiscreteScheduler", vae="AutoencoderKL",
        transformer=dict(image_dim=4, image_size=64, image_stride=8, text_token_dim=80, text_token_len=16,
                         video_base_size=[1, 2, 2], image_base_size=[4, 4],
                         arch=["vit_d2w64", "vit_d3w64", "mlp_d3w64"]),
        vae_config=dict(_IMAGE_VAE, block_out_channels=[32, 32, 64, 64], layers_per_block=1),
        text_encoder=_TINY_PHI),
}

ALIASES = {"video": "BAAI/nova-d48w1024-osp480", "image": "BAAI/nova-d48w1024-sdxl1024",
           "osp480": "BAAI/nova-d48w1024-osp480", "sd512": "BAAI/nova-d48w1024-sd512",
           "sdxl1024-w768": "BAAI/nova-d48w768-sdxl1024", "sdxl1024-w1024": "BAAI/nova-d48w1024-sdxl1024",
           "sdxl1024-w1536": "BAAI/nova-d48w1536-sdxl1024"}


CPU_SIZED = (*TINY, "demo")  # the bundled demo model's shapes (nova_core.demo.components)


def config(name: str) -> tuple[str, dict]:
    """Released repo id, short alias, tiny name or ``demo`` -> (canonical name, description)."""
    name = ALIASES.get(name, name)
    if name in CHECKPOINTS:
        return name, CHECKPOINTS[name]
    if name in TINY:
        return name, TINY[name]
    if name == "demo":
        from .demo.components import description

        return name, description()
    known = ", ".join(sorted(ALIASES) + sorted(CPU_SIZED) + sorted(CHECKPOINTS))
    raise KeyError(f"unknown config {name!r}; known: {known}")
