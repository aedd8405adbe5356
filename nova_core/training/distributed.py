"""Process setup for ``torchrun`` and the DDP / FSDP wrappers, with single-process fallbacks.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; then the process group uses NCCL on GPUs and
gloo on the CPU. Without them everything here is a no-op on one process, so the trainer has one
code path. FSDP shards every transformer block (and the rest at the root) over the processes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_ranks(env=os.environ) -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's RANK / WORLD_SIZE / LOCAL_RANK.

    Without WORLD_SIZE > 1 this is one process (rank 0), whatever a stray RANK says: the names are
    generic, and a shell or scheduler may set RANK for its own reasons. Values that cannot be a
    torchrun world are a one-line error, not an index error deep in the data sharding.
    """
    from ..errors import InputError

    def number(name, default):
        value = env.get(name, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"{name}={value!r} in the environment is not an integer (torchrun sets it)") from None

    world = number("WORLD_SIZE", "1")
    if world <= 1:
        return 0, 1, 0
    if "RANK" not in env:
        raise InputError(f"WORLD_SIZE={world} but RANK is not set: start the processes with torchrun")
    rank, local = number("RANK", None), number("LOCAL_RANK", "0")
    if not 0 <= rank < world or local < 0:
        raise InputError(f"RANK={rank} / LOCAL_RANK={local} do not fit WORLD_SIZE={world} (torchrun sets them)")
    return rank, world, local


def setup(device: str = "auto") -> Processes:
    """Join the torchrun process group if there is one; pick this process's device."""
    rank, world, local = torchrun_ranks()
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        from .config import ConfigError

        raise ConfigError("train.device is cuda, but no CUDA GPU is available")
    target = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(target)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=target if use_cuda else None)
    return Processes(rank, world, local, target)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(objective, procs: Processes, strategy: str, find_unused: bool):
    """DDP or FSDP around the objective (the transformer's only parent); as is on one process."""
    if not procs.enabled:
        return objective
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        model = objective.transformer
        for encoder in (model.video_encoder, model.image_encoder, model.image_decoder):
            for block in encoder.blocks:
                fully_shard(block)
        fully_shard(objective)
        return objective
    from torch.nn.parallel import DistributedDataParallel

    ids = [procs.device.index] if procs.device.type == "cuda" else None
    return DistributedDataParallel(objective, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(model):
    """The objective inside a DDP wrapper (FSDP modifies the module in place)."""
    return model.module if hasattr(model, "module") else model


@contextlib.contextmanager
def gradient_sync(model, enabled: bool):
    """Skip the gradient all-reduce on micro-steps before the last of an accumulation."""
    if enabled or not dist.is_initialized():
        yield
    elif hasattr(model, "no_sync"):  # DDP
        with model.no_sync():
            yield
    else:  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)


def all_sum(values: list[float], procs: Processes) -> list[float]:
    """Sum numbers over processes (the logged loss of a step is over the whole global batch)."""
    if not procs.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=procs.device)
    dist.all_reduce(t)
    return t.tolist()


def any_process(flag: bool, procs: Processes) -> bool:
    """True on every process if it is true on one (e.g. an interrupt seen by one rank)."""
    return bool(all_sum([float(flag)], procs)[0])


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on the CPU; gathers an FSDP shard (every process must call it)."""
    if hasattr(t, "full_tensor"):
        t = t.full_tensor()
    return t.detach().cpu()


def barrier(procs: Processes) -> None:
    if procs.enabled:
        dist.barrier()
