"""Starting weights of a transformer trained from scratch (``model.scratch``).

``default`` keeps torch's per-layer init. ``mar`` is the init MAR and DiT train with: Xavier-uniform
linear and patch-embedding weights with zero biases, and the diffusion head started as the identity
that predicts zero (adaLN-Zero: every modulation and the output layer zero), so early training
shapes the conditioning path before the head's residual blocks move. ``skip`` is ``mar`` with every
temporal- and spatial-encoder block started as the identity (its post-branch LayerNorm gains and
biases zero, as SkipInit / ReZero start residual branches) and the scale-shift layer's projection
zero (the condition of every frame starts as the BOV anchor). With torch's init each block adds
branch outputs of norm sqrt(width) that are alike at every position, so the condition tokens of
the spatial encoder differ across positions by under a tenth of their norm and its attention over
them stays uniform: measured on the demo, every frame then sees its predecessors only as a whole.
``aligned`` is ``skip`` with one attention head of every second-half spatial block started on the
condition token over each token (see :func:`align_condition_heads`).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import INITS


@torch.no_grad()
def initialise(model, kind: str) -> None:
    if kind == "default":
        return
    if kind not in INITS:
        raise ValueError(f"unknown init {kind!r}; one of {', '.join(INITS)}")
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            weight = module.weight
            nn.init.xavier_uniform_(weight.view(weight.size(0), -1))
            if module.bias is not None:
                module.bias.zero_()
    head = model.image_decoder
    for norm in [block.norm1 for block in head.blocks] + [head.norm]:
        norm.proj.weight.zero_()
        norm.proj.bias.zero_()
    head.head.weight.zero_()
    head.head.bias.zero_()
    if kind in ("skip", "aligned"):
        for block in [*model.video_encoder.blocks, *model.image_encoder.blocks]:
            for norm in (block.norm1, block.norm2):
                norm.weight.zero_()
                norm.bias.zero_()
        mixer = model.video_encoder.mixer
        if mixer is not None:
            mixer.proj.weight.zero_()
            mixer.proj.bias.zero_()
    if kind == "aligned":
        align_condition_heads(model)


def own_cells(rows: int, cols: int) -> torch.Tensor:
    """(rows * cols,): the condition token (row-major on the half-size grid) over each spatial token."""
    return (torch.arange(rows).repeat_interleave(cols) // 2) * (cols // 2) + torch.arange(cols).repeat(rows) // 2


def align_condition_heads(model, steps: int = 300) -> None:
    """Start head 0 of every second-half spatial block attending from each hidden token to the
    condition token whose (twice as coarse) temporal patch holds it.

    The temporal encoder's tokens tile the frame 2x coarser than the spatial encoder's, and each
    side carries a fixed sin-cos table of its own grid, so which condition token lies over which
    token is a fixed fact that the spatial encoder otherwise has to discover: measured on the demo,
    it did not in 1000 steps (attention over the condition tokens stayed uniform), so the frames
    after the first never saw where their predecessor's object was. Right after the ``skip`` init
    the inputs of these heads are known functions of position (a hidden token is MASK + its table
    row, a condition token the final norm of BOV + time(0) + its table row), so the head's query and
    key rows are fitted to that lookup directly: a few hundred Adam steps of cross-entropy on the
    head's attention (keys: the condition and the hidden tokens), with a small L2 term to keep the
    rows near the size of the others. Seeded, so the same config gives the same weights; every
    weight still trains afterwards. (The tables are too smooth for a closed-form least-squares fit:
    its weights come out 10^5 times too large.)
    """
    geo, encoder = model.geometry, model.image_encoder
    rows, cols = geo.image_base_size
    with torch.no_grad():
        time0 = model.video_pos_embed.time_embedding(geo.video_base_size[0])[0]
        condition = model.video_encoder.norm(model.mask_embed.bos_token + time0
                                             + model.video_pos_embed.space_embedding()).float()
        hidden = (model.mask_embed.mask_token + model.image_space_embedding()).float()
    keys = torch.cat([condition, hidden])
    own = own_cells(rows, cols)
    d, width = encoder.blocks[0].attn.head_dim, hidden.size(1)
    gen = torch.Generator().manual_seed(0)
    query_rows = (torch.randn(d, width, generator=gen) * 0.05).requires_grad_()
    key_rows = (torch.randn(d, width, generator=gen) * 0.05).requires_grad_()
    optimizer = torch.optim.Adam([query_rows, key_rows], lr=0.02)
    with torch.enable_grad():
        for _ in range(steps):
            logits = (hidden @ query_rows.T) @ (keys @ key_rows.T).T / d**0.5
            loss = nn.functional.cross_entropy(logits, own) + 1e-3 * (query_rows.square().sum() + key_rows.square().sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        for block in encoder.blocks[len(encoder.blocks) // 2 :]:
            weight, bias = block.attn.qkv.weight, block.attn.qkv.bias
            weight[:d] = query_rows.to(weight.dtype)
            weight[width : width + d] = key_rows.to(weight.dtype)
            bias[:d].zero_()
            bias[width : width + d].zero_()
