"""The demo model: a tiny NOVA checkpoint trained by nova itself on procedurally drawn clips.

``scenes``   the grammar and the renderer (one shape moving over a plain background)
``components`` the checkpoint's parts at demo size (VAE, Phi + tokenizer, DDPM, transformer config)
``checkpoint/`` the trained checkpoint itself, shipped as package data: ``--model demo``

The recipe that renders the data and trains the checkpoint is :mod:`nova_cli.demo.recipe` (it drives
``nova prepare`` / ``nova train``).
"""

import math
from pathlib import Path

from ..errors import CheckpointError

NAME = "demo"  # what --model (and from_pretrained) accept for the bundled checkpoint
CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
RECIPE = "python -m nova_cli.demo.recipe OUTDIR"


def available() -> bool:
    return (CHECKPOINT / "model_index.json").is_file()


def resolution(folder: Path | None = None) -> str:
    """"WxH" of the frames it makes, from its (checked) transformer config."""
    from ..loading import checkpoint_geometry

    height, width = checkpoint_geometry(folder or checkpoint()).pixel_size
    return f"{width}x{height}"


def checkpoint() -> Path:
    """The bundled checkpoint folder; a one-line error when this install lacks it."""
    if not available():
        raise CheckpointError(f"the demo checkpoint is missing from this install ({CHECKPOINT}); rebuild it "
                              f"with `{RECIPE}` and pass --model OUTDIR/checkpoint")
    return CHECKPOINT


def parameters(folder: Path | None = None) -> int:
    """The demo transformer's exact parameter count, from its safetensors header (nothing loaded)."""
    from ..weights import file_shapes, weight_files

    files = weight_files((folder or checkpoint()) / "transformer", "transformer", "diffusion_pytorch_model")
    return sum(math.prod(shape) for shape in file_shapes(files).values())
