"""Exponential moving average of the transformer's weights (the weights a checkpoint publishes).

The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates (diffusers' EMAModel
rule), so a short fine-tune is not dominated by the starting weights. Shadows are float32 and
live where the parameters live; under FSDP they are sharded like them.
"""

from __future__ import annotations

import torch


class EMA:
    def __init__(self, named_parameters, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {name: p.detach().float().clone() for name, p in named_parameters}

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, named_parameters) -> None:
        weight = 1 - self.current_decay()
        for name, p in named_parameters:
            self.shadow[name].lerp_(p.detach().float(), weight)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict, shadow: dict) -> None:
        """``shadow``: full tensors by name (re-sharded like the current shadows if needed)."""
        self.updates = int(state["updates"])
        for name, current in self.shadow.items():
            full = shadow[name].to(torch.float32)
            if hasattr(current, "device_mesh"):  # a DTensor (FSDP): keep this process's shard
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full.to(current.device), current.device_mesh, current.placements)
            current.copy_(full)
