"""Matmul FLOPs of a generation, per stage, from the model's geometry (2 FLOPs per multiply-add).

Counts what the fast path computes (linears, patch embeddings, attention's two matmuls); norms and
elementwise work are left out. ``tests/nova_core/test_flops.py`` checks these formulas against
``torch.utils.flop_counter`` on a real run.
"""

from __future__ import annotations

from .config import Geometry
from .sampling import mask_schedule


def _block(q_len: int, k_len: int, dim: int) -> int:
    """One post-norm ViT block: qkv + out projection + 4x MLP + QK^T and AV."""
    return 24 * q_len * dim * dim + 4 * q_len * k_len * dim


def temporal(geo: Geometry, num_frames: int, prefix_len: int, batch: int, cfg: bool) -> int:
    """Per-frame work of the temporal encoder (previous frame's patches, blocks over the new tokens
    against the cache, scale-shift), summed over the frames."""
    d, nv, rows = geo.temporal.width, geo.num_video_tokens, batch * (2 if cfg else 1)
    patch = 2 * nv * geo.latent_channels * geo.video_patch_size**2 * d * batch
    rank = geo.mixer_rank
    mixer = 0 if rank is None else 2 * nv * rows * ((d * rank + rank * 2 * d) if rank else d * 2 * d)
    total = 0
    for t in range(num_frames):
        q_len = nv + (prefix_len if t == 0 else 0)
        k_len = prefix_len + nv * (t + 1)
        total += geo.temporal.depth * _block(q_len, k_len, d) * rows
        total += (patch + mixer) if t else 0
    return total


def spatial_step(geo: Geometry, known: int, batch: int, cfg: bool) -> int:
    d, n, nv = geo.spatial.width, geo.num_tokens, geo.num_video_tokens
    rows, split = batch * (2 if cfg else 1), geo.spatial.depth // 2
    patch = 2 * n * geo.latent_channels * geo.patch_size**2 * d * batch
    first = split * _block(nv + known, nv + known, d)
    second = (geo.spatial.depth - split) * _block(nv + n, nv + n, d)
    return patch + (first + second) * rows


def head_step(geo: Geometry, tokens: int, rows: int) -> int:
    """One diffusion step of the head (:class:`~nova_core.diffusion_head.FusedHead`)."""
    w, out = geo.head.width, geo.latent_channels * geo.patch_size**2
    per_token = 2 * (out * w + geo.head.depth * (3 * w * w + 2 * w * w) + 2 * w * w + w * out)
    return rows * tokens * per_token


def head_condition(geo: Geometry, tokens: int, rows: int) -> int:
    """The head's condition branch of z, once per set (its timestep branch, once per call for the
    S timesteps, is left out)."""
    w, d = geo.head.width, geo.spatial.width
    return rows * tokens * 2 * (d * w + w * w)


def spatial_and_head(geo: Geometry, ar_steps: int, diffusion_steps: int, batch: int, cfg: bool,
                     cfg_steps: list[bool] | None = None) -> tuple[int, int]:
    """FLOPs of one generated frame: (spatial encoder, diffusion head)."""
    cfg_steps = cfg_steps if cfg_steps is not None else [cfg] * diffusion_steps
    spatial = head = known = 0
    for k in (int(k) for k in mask_schedule(ar_steps, geo.num_tokens) if k > 0):
        spatial += spatial_step(geo, known, batch, cfg)
        head += head_condition(geo, k, batch * (2 if cfg else 1))
        head += sum(head_step(geo, k, batch * (2 if on else 1)) for on in cfg_steps)
        known += k
    return spatial, head


def text_encoder(config, tokens: int, rows: int) -> int:
    """Phi: attention projections, MLP and attention matmuls over ``tokens`` for ``rows`` prompts."""
    h, i = config.hidden_size, config.intermediate_size
    per_layer = 8 * tokens * h * h + 4 * tokens * h * i + 4 * tokens * tokens * h
    return rows * config.num_hidden_layers * per_layer


def generation(geo: Geometry, *, num_frames, num_generated, ar_steps, diffusion_steps, batch, cfg,
               prefix_len) -> dict[str, int]:
    spatial, head = spatial_and_head(geo, ar_steps, diffusion_steps, batch, cfg)
    return {"temporal": temporal(geo, num_frames, prefix_len, batch, cfg),
            "spatial": spatial * num_generated, "head": head * num_generated}
