"""The learning-rate factor both trainers use: linear warmup, then constant or a cosine decay."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, warmup_steps: int, schedule: str, decay_steps: int, floor: float = 0.0) -> float:
    """Factor of the base lr at ``step`` (0-based); the cosine falls from 1 to ``floor`` over the
    ``decay_steps`` steps after the warmup and stays there."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule != "cosine":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, decay_steps))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
