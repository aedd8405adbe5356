"""CUDA calls that name their device, and the scope that makes a pipeline's device current.

``torch.cuda`` functions without a device argument act on the *current* device, which is GPU 0
unless something sets it. A pipeline on ``cuda:1`` (``--device cuda:1``, a torchrun rank) would
then record events on GPU 0's stream, capture graphs on GPU 0 and read GPU 0's memory counters.
So every call here takes the device explicitly, and :func:`device_scope` makes it current for the
whole of a pipeline call (for the library code that does not take one).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch


def is_cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def device_scope(device):
    """``torch.cuda.device(device)`` for a CUDA device, else a no-op context."""
    return torch.cuda.device(torch.device(device)) if is_cuda(device) else nullcontext()


def current_stream(device):
    """The stream work for ``device`` is queued on (CUDA only)."""
    return torch.cuda.current_stream(torch.device(device))


def synchronize(device) -> None:
    """Wait for ``device``'s queued work (no-op on the CPU)."""
    if is_cuda(device):
        torch.cuda.synchronize(torch.device(device))


def reset_peak_memory(device) -> None:
    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_memory_gib(device) -> float | None:
    """Peak memory allocated on ``device`` since the last reset, in GiB (None off CUDA)."""
    if is_cuda(device):
        return round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, 3)
    return None


@contextmanager
def tf32(enabled: bool):
    """TF32 in CUDA matmuls and cuDNN convolutions on or off for a block, then as before.

    Generation keeps PyTorch's defaults (convolutions in TF32 on Ampere and newer, matmuls not):
    only float32 work is affected, i.e. the float32 VAE under a float16 pipeline and float32 runs,
    at about 1e-3 relative error. Parity checks against float32 references turn it off.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
