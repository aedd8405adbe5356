"""The VAE's diagonal Gaussian posterior and decoder output, as diffusers defines them.

Kept here so that loading the video VAE does not import ``diffusers.models.autoencoders``, whose
package imports every autoencoder diffusers has (~1 s of a short run's start-up). Sampling is
diffusers' to the bit: ``mean + std * randn_tensor(...)`` with logvar clamped to [-30, 20]
(tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor


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
class DecoderOutput(BaseOutput):
    sample: torch.Tensor
    commit_loss: torch.FloatTensor | None = None
