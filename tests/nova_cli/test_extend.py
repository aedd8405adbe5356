"""The extension window: context and new latent frames per round."""

from __future__ import annotations

import pytest

from nova_cli.errors import UsageError
from nova_cli.extend import window
from nova_cli.settings import Settings


@pytest.mark.parametrize("frames, chunk, expected", [
    (33, "auto", (9, 4, 5, 16)), (17, "auto", (5, 2, 3, 8)), (9, "auto", (3, 1, 2, 4)), (33, 8, (9, 8, 1, 32)),
    (5, "auto", (2, 1, 1, 4)),
])
def test_window(frames, chunk, expected):
    win = window(Settings(model="m", presets=(), frames=frames, chunk=chunk))
    assert (win.latents, win.chunk, win.context, win.new_frames) == expected


def test_chunk_must_leave_context():
    with pytest.raises(UsageError, match="--chunk 9: must be 1..8"):
        window(Settings(model="m", presets=(), frames=33, chunk=9))
