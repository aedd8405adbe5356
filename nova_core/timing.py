"""Stage timers for the sampling loop that never synchronise inside it.

On CUDA a section records two events; their times are read once, at the end (``totals``). On the
CPU it is wall time. The sampling loop is handed a timer explicitly; the default does nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext


class NullTimer:
    def __call__(self, name: str):
        return nullcontext()


class StageTimer:
    def __init__(self, device="cpu"):
        import torch

        self.cuda = torch.device(device).type == "cuda"
        self.records: dict[str, list] = defaultdict(list)

    @contextmanager
    def __call__(self, name: str):
        if self.cuda:
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.records[name].append((start, end))
        else:
            start = time.perf_counter()
            yield
            self.records[name].append(time.perf_counter() - start)

    def totals(self) -> dict[str, float]:
        """Seconds per section name (summed over calls)."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return {k: sum(s.elapsed_time(e) for s, e in v) / 1000 for k, v in self.records.items()}
        return {k: float(sum(v)) for k, v in self.records.items()}

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.records.items()}
