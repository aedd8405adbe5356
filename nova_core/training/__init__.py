"""Training and fine-tuning NOVA: the cache format, the objective and the loop.

``cache``        what ``nova prepare`` writes (latent moments, captions, motion flow, shards)
``encode``       what ``prepare`` computes per item with a checkpoint's VAE (and Phi)
``masking``      per-frame mask ratio (truncated normal on [0.7, 1]) and random order
``loss``         the noise schedule of the checkpoint and the per-token diffusion objective
``data``         data order and every random draw, seeded per sample (resume- and shard-exact)
``ema``          moving average of the weights
``distributed``  torchrun process groups, DDP / FSDP
``checkpoint``   official folder layout + resume state
``config``       the TOML settings
``init``         starting weights of a scratch transformer (torch's, or MAR's adaLN-Zero)
``trainer``      the loop
``vae``          training a VAE from scratch (reconstruction + KL), for the demo checkpoint
"""
