"""The VAE's diagonal Gaussian posterior and its outputs, as diffusers defines them.

Kept here so that loading the video VAE does not import diffusers (see ``modeling``). Sampling
is diffusers' to the bit: ``mean + std * randn_tensor(...)`` with logvar clamped to [-30, 20]
(tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .modeling import Output, randn_tensor


class DiagonalGaussianDistribution:
    def __init__(self, parameters: torch.Tensor):
        self.parameters = parameters
        self.mean, logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = randn_tensor(self.mean.shape, generator=generator, device=self.parameters.device,
                             dtype=self.parameters.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean


@dataclass
class DecoderOutput(Output):
    sample: torch.Tensor
    commit_loss: torch.Tensor | None = None


@dataclass
class AutoencoderKLOutput(Output):
    latent_dist: DiagonalGaussianDistribution
