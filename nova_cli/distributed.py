"""Running ``nova batch`` under torchrun: which jobs are this rank's, and gathering every result.

Jobs are split round-robin by their place in the file (job i on rank i mod N), so every job runs
exactly once without any coordination while working. The process group only carries the
results at the end, so it uses gloo on every machine (CPU or GPU); each rank generates on its own
device (``cuda:LOCAL_RANK``, or the CPU).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

# Ranks finish at different times; the fastest one waits for the slowest in the final gather.
GATHER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        return index % self.world == self.rank


def from_environment(env=os.environ) -> Ranks:
    """The ranks torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK; one process otherwise."""
    from nova_core.training.distributed import torchrun_ranks

    rank, world, local = torchrun_ranks(env)
    return Ranks(rank, world, local) if world > 1 else Ranks()


@contextmanager
def process_group(ranks: Ranks):
    """A gloo process group for the final gather (nothing when running alone)."""
    if ranks.world == 1:
        yield
        return
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world, timeout=GATHER_TIMEOUT)
    try:
        yield
        dist.barrier()  # no rank tears its sockets down while another is still inside a collective
    finally:
        dist.destroy_process_group()


def under_torchrun(env=os.environ) -> bool:
    """Whether to leave as a torchrun rank does (lenient: the command itself reports a bad environment)."""
    try:
        return int(env.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def leave(code: int) -> None:
    """End a torchrun rank without the interpreter's teardown.

    Once every output is written and the results gathered there is nothing left to do at exit, but
    gloo's transport threads can still be live while the interpreter finalizes; CI saw rank 0 of a
    finished batch abort there ("terminate called without an active exception", SIGABRT), which
    torchrun reports as a failed run. Flushing and leaving at once makes the exit code the batch's.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def gather(results: list, ranks: Ranks) -> list:
    """Every rank's results, on every rank (so every rank can exit with the batch's status)."""
    if ranks.world == 1:
        return list(results)
    import torch.distributed as dist

    parts: list = [None] * ranks.world
    dist.all_gather_object(parts, results)
    return [item for part in parts for item in part]
