"""nova flow: the number NOVA's video model is conditioned on, measured like its training data."""

from __future__ import annotations

import json

import pytest

from nova_cli.media import measure_motion_flow
from tests.conftest import TINY_T2V


def test_prints_the_clips_flow(nova, media):
    result = nova("flow", media["clip"], "--model", TINY_T2V)
    assert result.code == 0, result.err
    expected = measure_motion_flow(media["frames"], 24, (64, 96))
    assert float(result.out) == pytest.approx(expected, abs=0.005) and 1 < expected < 20
    assert "measured at 12 fps and 96x64" in result.err and "warning" not in result.err


def test_json_and_the_models_size(nova, media):
    result = nova("flow", media["clip"], "--model", TINY_T2V, "--json")
    record = json.loads(result.out)
    assert record["measured_at"] == {"fps": 12, "width": 96, "height": 64}
    assert record["flow"] == pytest.approx(measure_motion_flow(media["frames"], 24, (64, 96)), abs=1e-3)
    assert record["frames"] == 30 and record["fps"] == 24


def test_not_a_video(nova, media):
    result = nova("flow", media["text"])
    assert result.code == 1 and "not a readable video" in result.err and "Traceback" not in result.err


def test_a_still_image_is_not_a_clip(nova, media):
    result = nova("flow", media["image"])
    assert result.code == 1 and "not a clip" in result.err and "still image" in result.err
    assert result.out == ""


def test_a_flow_above_the_accepted_range_is_clamped_with_a_note(nova, media):
    from nova_cli.media import read_video

    measured = measure_motion_flow(*read_video(media["clip"]), (480, 768))
    assert measured > 20  # the square moves 4 px per frame at 200 px wide: ~32 px at 768x480 and 12 fps
    result = nova("flow", media["clip"])
    assert result.code == 0 and result.out.strip() == "20.00"
    assert f"measured flow {measured:.2f}" in result.err and "using 20" in result.err
    record = json.loads(nova("flow", media["clip"], "--json").out)
    assert record["flow"] == 20.0 and record["measured"] == pytest.approx(measured, abs=1e-3)
    assert nova("t2v", "x", "--flow", result.out.strip(), "--device", "tpu").err.count("--flow") == 0
