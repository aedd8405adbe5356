"""nova's posterior samples exactly as diffusers' DiagonalGaussianDistribution does."""

from __future__ import annotations

import torch

from nova_core.posterior import DiagonalGaussianDistribution


def test_same_sample_mean_and_spread_as_diffusers():
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution as Theirs

    moments = torch.randn(2, 8, 3, 4, 5, generator=torch.Generator().manual_seed(0)) * 20  # clamping too
    ours, theirs = DiagonalGaussianDistribution(moments), Theirs(moments)
    for name in ("mean", "logvar", "std", "var"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    a = ours.sample(torch.Generator().manual_seed(7))
    b = theirs.sample(torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(ours.mode(), theirs.mode())


def test_loading_the_video_vae_skips_diffusers_autoencoders():
    import subprocess
    import sys

    from tests.nova_cli.conftest import subprocess_env

    code = ("import sys, nova_core.vae_opensora; "
            "print([m for m in sys.modules if m.startswith('diffusers.models.autoencoders')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
