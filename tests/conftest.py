"""Shared fixtures: the reference data beside the checkout, and deterministic CPU settings."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite sends Ctrl-C to nova (in-process and to child processes). A shell that runs it in the
# background (`cmd &`) starts it with SIGINT ignored, which children inherit; restore the terminal's.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")

REPO = Path(__file__).resolve().parents[1]


def _find_reference() -> Path:
    """$NOVA_REFERENCE, else shared/reference beside the checkout (or beside a parent), else /work/shared."""
    if os.environ.get("NOVA_REFERENCE"):
        return Path(os.environ["NOVA_REFERENCE"])
    for parent in REPO.parents:
        if (parent / "shared" / "reference").is_dir():
            return parent / "shared" / "reference"
    return Path("/work/shared/reference")


REFERENCE = _find_reference()
TINY_T2V = REFERENCE / "tiny-t2v"
TINY_T2I = REFERENCE / "tiny-t2i"
CASES = REFERENCE / "cases"
MANIFESTS = REFERENCE / "manifests"

# The reference outputs were recorded with 2 threads; keep summation order the same.
torch.set_num_threads(2)


def pytest_collection_modifyitems(config, items):
    if not REFERENCE.is_dir():
        raise pytest.UsageError(f"reference data not found at {REFERENCE} (set NOVA_REFERENCE)")
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


def load_case(name: str):
    """(tensors, meta) of ``cases/<name>.safetensors`` / ``.json``."""
    from safetensors.torch import load_file

    tensors = load_file(str(CASES / f"{name}.safetensors"))
    meta_file = CASES / f"{name}.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return tensors, meta


@pytest.fixture(scope="session")
def reference() -> Path:
    return REFERENCE
