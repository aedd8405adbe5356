"""nova_core: the NOVA model (temporal + spatial encoders, diffusion head), its VAE and pipeline.

Imports are lazy so that ``nova --help`` does not pay for diffusers/transformers.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "NOVAPipeline": "pipeline",
    "NOVAPipelineOutput": "pipeline",
    "NOVATransformer3DModel": "transformer",
    "AutoencoderKLOpenSora": "vae_opensora",
    "KVCache": "layers",
    "Guidance": "sampling",
    "NovaError": "errors",
    "CheckpointError": "errors",
    "ModelNotAvailableError": "errors",
    "InputError": "errors",
}

__all__ = list(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'nova_core' has no attribute {name!r}")
