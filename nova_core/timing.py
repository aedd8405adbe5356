"""Stage timers for the sampling loop that never synchronise inside it.

On CUDA a section records two events on the device's current stream; their times are read once,
at the end (``totals``), after synchronising that device. On the CPU it is wall time. The sampling loop is handed a timer explicitly; the default does nothing.
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

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.records: dict[str, list] = defaultdict(list)

    @contextmanager
    def __call__(self, name: str):
        if self.cuda:
            import torch

            from .devices import current_stream

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(current_stream(self.device))
            yield
            end.record(current_stream(self.device))
            self.records[name].append((start, end))
        else:
            start = time.perf_counter()
            yield
            self.records[name].append(time.perf_counter() - start)

    def totals(self) -> dict[str, float]:
        """Seconds per section name (summed over calls)."""
        if self.cuda:
            from .devices import synchronize

            synchronize(self.device)
            return {k: sum(s.elapsed_time(e) for s, e in v) / 1000 for k, v in self.records.items()}
        return {k: float(sum(v)) for k, v in self.records.items()}

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.records.items()}
