"""Devices, dtypes and checkpoints: what a job runs on, decided before any weights are loaded.

``inspect_checkpoint`` reads only the configs (resolution, image or video), so the plan line and
most input errors come before the seconds-to-minutes of loading weights. ``Pipelines`` keeps the
last loaded pipeline so a batch reuses it across jobs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError, UsageError

class OutOfMemory(CliError):
    """The device ran out of memory; the message names the stage and what helps."""


def resolve_device(name: str, local_rank: int | None = None) -> str:
    """``auto`` -> cuda (this rank's GPU under torchrun) if there is one, else cpu."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise UsageError(f"--device {name}: CUDA requested but no GPU is available (torch "
                           f"{torch.__version__}, {build}); use --device cpu")
        index = name.partition(":")[2]
        if not index:
            return f"cuda:{local_rank or 0}"
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: no such GPU ({torch.cuda.device_count()} visible)")
        return name
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError("--device mps: Apple GPU (MPS) requested but not available; use --device cpu")
        return name
    if name == "cpu":
        return name
    raise UsageError(f"--device {name}: unknown device (use auto, cpu, cuda, cuda:N or mps)")


def resolve_dtype(name: str, device: str):
    """``auto``: float16 on GPUs (as NOVA's own demos), float32 on the CPU (6x faster there than bf16)."""
    import torch

    if name == "auto":
        name = "float16" if device.startswith(("cuda", "mps")) else "float32"
    return getattr(torch, name)


@dataclass(frozen=True)
class Checkpoint:
    name: str  # what the user named: repo id or folder
    folder: Path
    revision: str | None  # Hub commit hash; None for local folders
    pixel_size: tuple[int, int]  # (H, W)
    is_video: bool

    @property
    def label(self) -> str:
        rev = f"@{self.revision[:10]}" if self.revision else ""
        return f"{self.name}{rev}"


def inspect_checkpoint(model: str, revision: str | None = None) -> Checkpoint:
    """Resolve (Hub cache or folder) and read the configs; no weights are loaded."""
    from nova_core import hub, loading

    found = hub.resolve(model, revision=revision)
    index = loading.read_model_index(found.folder)
    geo = loading.checkpoint_geometry(found.folder)
    is_video = loading.class_name(index, "vae") == "AutoencoderKLOpenSora"
    return Checkpoint(found.name, found.folder, found.revision, tuple(geo.pixel_size), is_video)


class Pipelines:
    """Loads pipelines, keeping the last one (a batch of jobs on one model loads it once)."""

    def __init__(self):
        self._key = None
        self._pipe = None

    def get(self, checkpoint: Checkpoint, device: str, dtype, low_memory: bool, timer=None):
        """``timer(part)``: a context manager around each loading part (see ``load_pipeline``)."""
        key = (str(checkpoint.folder), device, str(dtype), low_memory)
        if key != self._key:
            if self._pipe is not None:  # gc.collect() alone takes ~0.1 s: only when there is a pipeline to free
                self.release()
            self._pipe = load_pipeline(checkpoint, device, dtype, low_memory, timer)
            self._key = key
        return self._pipe

    def release(self) -> None:
        self._pipe = self._key = None
        free_memory()


def load_pipeline(checkpoint: Checkpoint, device: str, dtype, low_memory: bool, timer=None):
    """``low_memory``: load on the CPU and let the pipeline move each component when it runs.

    ``timer`` times each component's loading and the move to the device.
    """
    from nova_core.timing import NullTimer

    timer = timer or NullTimer()
    with timer("libraries"):  # nova's own modules count too (torch is often imported by then)
        from nova_core import NOVAPipeline
    pipe = NOVAPipeline.from_pretrained(str(checkpoint.folder), torch_dtype=dtype, timer=timer)
    with timer(f"to {device}"):
        if low_memory:
            pipe.enable_low_memory(device)
        else:
            pipe.to(device)
    return pipe


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


STAGE_WORDS = {
    "load": "loading the model", "prepare": "encoding the prompt", "encode": "encoding the input clip",
    "sample": "sampling", "decode": "decoding with the VAE", "write": "writing the output",
}


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@contextmanager
def memory_guard(stages, settings):
    """Turn an out-of-memory error into one line naming the stage and the preset that helps."""
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        stage = stages.current or "run"
        free_memory()
        if settings.low_memory:
            hint = "try fewer --frames, or --dtype float16"
        else:
            hint = "try --preset low-memory (CPU offload of idle parts, tiled VAE decode)"
            if stage == "decode":
                hint = "the video was sampled but not decoded; " + hint
        raise OutOfMemory(f"out of memory while {STAGE_WORDS.get(stage, stage)} (stage '{stage}'); {hint}") from exc
