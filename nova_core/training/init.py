"""Starting weights of a transformer trained from scratch (``model.scratch``).

``default`` keeps torch's per-layer init. ``mar`` is the init MAR and DiT train with: Xavier-uniform
linear and patch-embedding weights with zero biases, and the diffusion head started as the identity
that predicts zero (adaLN-Zero: every modulation and the output layer zero), so early training
shapes the conditioning path before the head's residual blocks move.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import INITS


@torch.no_grad()
def initialise(model, kind: str) -> None:
    if kind == "default":
        return
    if kind != "mar":
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
