"""The demo checkpoint's parts in the official video layout (like ``BAAI/nova-d48w1024-osp480``),
at a size that trains on a CPU: a causal 3D VAE (4x time, 8x space), a Phi text encoder with a
word-level tokenizer over the caption vocabulary (random and frozen, as NOVA keeps Phi frozen),
a DDPM scheduler and a transformer config for 96x160 frames.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import loading
from .scenes import BACKGROUNDS, COLOURS, DIRECTIONS, FRAME_SIZE, SHAPES, caption

EOS, UNK = "<|endoftext|>", "<|unk|>"


@dataclass
class ComponentSettings:
    """Sizes of every part; the recipe records them in the shipped files."""

    vae_channels: list = field(default_factory=lambda: [16, 16, 32, 32])
    # GroupNorm groups: several channels per group. With one channel per group (16 of 16) every norm
    # removes each channel's mean, and a flat background's colour (most of every frame here) is
    # learned very slowly (measured: a 2D KL-VAE on these clips, L1 0.44 after 300 steps that way,
    # 0.10 with 4 groups; two flat frames, MSE 0.54 vs 0.05 after 60 steps).
    vae_groups: int = 4
    # 16, not 4: fitting 16 fixed 9-frame crops, L1 after 200 steps is 0.11 with 16 latent channels,
    # 0.27 with 4 (32: no better than 16); shapes and colours of small objects need the room
    latent_channels: int = 16
    initial_logvar: float = -6.0  # of the untrained VAE's posterior (see narrow_posterior)
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_len: int = 16  # tokens per caption (a grammar caption has 9)
    arch: list = field(default_factory=lambda: ["vit_d2w128", "vit_d4w128", "mlp_d2w128"])
    mixer_rank: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


def vocabulary() -> list[str]:
    """Every word the grammar can produce, in a fixed order, after the two special tokens."""
    words = [EOS, UNK]
    for word in caption("x", "x", "x", "x").split() + list(COLOURS) + list(BACKGROUNDS) + list(SHAPES) + list(DIRECTIONS):
        if word != "x" and word not in words:
            words.append(word)
    return words


def save_tokenizer(folder: Path, max_length: int) -> None:
    """A lower-casing word-level tokenizer (``tokenizer.json``) that ``AutoTokenizer`` loads as a
    ``PreTrainedTokenizerFast``; unknown words map to ``<|unk|>``, padding is ``<|endoftext|>`` as in Phi."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocabulary())}, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": EOS, "eos_token": EOS,
              "pad_token": EOS, "unk_token": UNK, "model_max_length": max_length}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def text_encoder_config(settings: ComponentSettings) -> dict:
    return dict(vocab_size=len(vocabulary()), hidden_size=settings.text_width,
                intermediate_size=4 * settings.text_width, num_hidden_layers=settings.text_layers,
                num_attention_heads=settings.text_heads, max_position_embeddings=settings.text_len,
                partial_rotary_factor=0.5)


def vae_config(settings: ComponentSettings) -> dict:
    """Two 2D then two 3D down blocks: 8x in space, 4x in time."""
    return dict(down_block_types=["DownEncoderBlock2D"] * 2 + ["DownEncoderBlock3D"] * 2,
                up_block_types=["UpDecoderBlock3D"] * 4, block_out_channels=list(settings.vae_channels),
                layers_per_block=1, latent_channels=settings.latent_channels, norm_num_groups=settings.vae_groups,
                sample_size=FRAME_SIZE[0])


def text_encoder(settings: ComponentSettings, seed: int):
    """A randomly initialised Phi decoder stack (``PhiModel``), seeded; it is never trained."""
    from transformers import PhiConfig, PhiModel

    config = PhiConfig(**text_encoder_config(settings), bos_token_id=0, eos_token_id=0, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PhiModel(config).eval().requires_grad_(False)


def vae(settings: ComponentSettings, seed: int, scaling_factor: float = 1.0):
    """An untrained causal 3D VAE: two 2D then two 3D down blocks (8x space, 4x time)."""
    from ..vae_opensora import AutoencoderKLOpenSora

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoencoderKLOpenSora(**vae_config(settings), scaling_factor=scaling_factor)
    narrow_posterior(model, settings.initial_logvar)
    start_per_frame(model)
    return model


@torch.no_grad()
def start_per_frame(model) -> None:
    """Start every causal 3D conv on its current frame only (the past taps zero, the current tap
    scaled by sqrt(kernel_t) to keep the output's variance), as 3D VAEs inflated from 2D ones start.

    With the default init each conv averages ~3 frames, and the encoder's and decoder's long causal
    receptive fields drag every frame's object back towards frame 0's place. Measured on the demo
    clips (600 steps of 8 9-frame crops): the object's centre in reconstructed frames 16/20/28/32 of a
    clip at x = 60/72/96/108 comes out at 58/73/95/105 with this start, and direction reads 24 of 24
    whole clips; with the default init, even after 2400 steps, 13/27/36/48 and 19 of 24.
    """
    from ..vae_opensora import CausalConv3d

    for module in model.modules():
        if isinstance(module, CausalConv3d) and module.kernel_size[0] > 1:
            module.weight[:, :, :-1] = 0
            module.weight[:, :, -1] *= module.kernel_size[0] ** 0.5


@torch.no_grad()
def narrow_posterior(model, logvar: float) -> None:
    """Start the posterior's log-variance near ``logvar`` whatever the input.

    A fresh encoder's log-variance is ~0: the decoder then sees N(0, 1) noise with a faint signal
    in it, learns to ignore its latent and paints the average frame; the KL term keeps it there
    (posterior collapse). Starting narrow lets reconstruction shape the latents first.
    """
    channels = model.config.latent_channels
    model.quant_conv.weight[channels:] *= 0.1
    model.quant_conv.bias[channels:] = logvar


def transformer_config(settings: ComponentSettings) -> dict:
    """96x160 frames -> 12x20 latents, 2x2 patches (6x10 tokens), 4x4 for the temporal encoder (3x5).

    The temporal patches must tile the latent grid exactly: a strided patch embedding drops what is
    left over, and the frames after it would never see an object there.
    """
    height, width = FRAME_SIZE
    stride, patch = 8, 2
    tile = stride * 2 * patch  # pixels per temporal-encoder patch
    if height % tile or width % tile:
        raise ValueError(f"demo frames must be a multiple of {tile} px on both sides, got {height}x{width}")
    return {
        "_class_name": "NOVATransformer3DModel",
        "image_dim": settings.latent_channels, "image_size": [height, width], "image_stride": stride,
        "image_base_size": [height // stride // patch, width // stride // patch],
        "video_base_size": [9, height // stride // (2 * patch), width // stride // (2 * patch)],
        "text_token_dim": settings.text_width, "text_token_len": settings.text_len,
        "video_mixer_rank": settings.mixer_rank, "rotary_pos_embed": False, "arch": list(settings.arch),
    }


def description(settings: ComponentSettings | None = None) -> dict:
    """The demo's shapes as ``nova_core.released`` describes a checkpoint (``nova bench --config demo``)."""
    settings = settings or ComponentSettings()
    return dict(kind="video", resolution=f"{FRAME_SIZE[1]}x{FRAME_SIZE[0]}", scheduler="DDPMScheduler",
                vae="AutoencoderKLOpenSora", transformer=transformer_config(settings),
                vae_config=vae_config(settings), text_encoder=text_encoder_config(settings))


def scheduler():
    """DDPM with the released video checkpoint's betas (scaled-linear), not clipped, predicting
    the clean sample (x0) rather than the noise.

    With epsilon prediction a small head's clean-sample estimate at the first, noisiest steps
    carries its error times 1 / sqrt(alpha_bar) (~15 at t = 999): measured on the demo after 1000
    steps, errors of 1.12 / 0.68 / 0.28 at t = 999 / 900 / 500, seen as per-token noise on every
    background; x0 prediction gives clean backgrounds at the same cost.

    The latents are scaled to unit variance, so clipping each step's x0 to [-1, 1] (diffusers'
    default) would pull over a quarter of every latent to the bound: measured on a probe VAE's
    latents, 28 % of the values lie outside it.
    """
    from ..scheduling import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, prediction_type="sample",
                         timestep_spacing="leading")


def save_checkpoint(folder: Path, *, vae_model, settings: ComponentSettings, seed: int, transformer=None) -> Path:
    """Write a complete checkpoint folder; the transformer is a seeded random one unless given."""
    from ..transformer import NOVATransformer3DModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if transformer is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            transformer = NOVATransformer3DModel.from_config(transformer_config(settings))
    transformer.save_pretrained(str(folder / "transformer"))
    vae_model.save_pretrained(str(folder / "vae"))
    loading.save_text_encoder(text_encoder(settings, seed), folder / "text_encoder")
    save_tokenizer(folder / "tokenizer", settings.text_len)
    scheduler().save_pretrained(str(folder / "scheduler"))
    loading.save_model_index(folder, "DDPMScheduler", "AutoencoderKLOpenSora")
    return folder
