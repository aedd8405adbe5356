"""nova flow: the number NOVA's video model is conditioned on, measured like its training data."""

from __future__ import annotations

import json

import pytest

from nova_cli.media import measure_motion_flow
from tests.conftest import TINY_T2V


def test_prints_the_clips_flow(nova, media):
    result = nova("flow", media["clip"])
    assert result.code == 0, result.err
    expected = measure_motion_flow(media["frames"], 24, (480, 768))
    assert float(result.out) == pytest.approx(expected, abs=0.005) and expected > 1
    assert "measured at 12 fps and 768x480" in result.err


def test_json_and_the_models_size(nova, media):
    result = nova("flow", media["clip"], "--model", TINY_T2V, "--json")
    record = json.loads(result.out)
    assert record["measured_at"] == {"fps": 12, "width": 96, "height": 64}
    assert record["flow"] == pytest.approx(measure_motion_flow(media["frames"], 24, (64, 96)), abs=1e-3)
    assert record["frames"] == 30 and record["fps"] == 24


def test_not_a_video(nova, media):
    result = nova("flow", media["text"])
    assert result.code == 1 and "not a readable video" in result.err and "Traceback" not in result.err
