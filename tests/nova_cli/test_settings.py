"""The checks every setting goes through, wherever it was written."""

from __future__ import annotations

import pytest

from nova_cli.errors import UsageError
from nova_cli.settings import check, valid_frames


@pytest.mark.parametrize("count, nearest", [(30, "29 or 33"), (31, "29 or 33"), (34, "33 or 37"), (1, "5"),
                                            (4, "5"), (6, "5 or 9"), (0, "5"), (-7, "5")])
def test_invalid_frame_counts_name_the_nearest_valid_ones(count, nearest):
    with pytest.raises(ValueError, match=f"nearest valid: {nearest}$"):
        valid_frames(count)


@pytest.mark.parametrize("count", [5, 9, 17, 29, 33, 65])
def test_valid_frame_counts(count):
    assert valid_frames(count) == count


@pytest.mark.parametrize("name, value, expected", [
    ("flow", "auto", "auto"), ("flow", 0, 0.0), ("flow", "20", 20.0), ("dtype", "bf16", "bfloat16"),
    ("dtype", "FP16", "float16"), ("chunk", "auto", "auto"), ("chunk", "3", 3), ("ar_steps", 4.0, 4),
    ("negative_prompt", "", ""), ("revision", "", None), ("device", " CUDA:1 ", "cuda:1"), ("seed", 0, 0),
    ("low_memory", True, True),
])
def test_accepted_values(name, value, expected):
    assert check(name, value, "test") == expected


@pytest.mark.parametrize("name, value, message", [
    ("flow", 20.5, "out of range"), ("flow", "fast", "expected a number"), ("flow", float("nan"), "finite"),
    ("ar_steps", 2.5, "whole number"), ("ar_steps", True, "whole number"), ("diffusion_steps", 0, "1 or more"),
    ("guidance", -1, "0 or more"), ("fps", 0, "between 0 and 240"), ("chunk", 0, "1 or more"),
    ("low_memory", "yes", "true or false"), ("seed", -1, "between 0"), ("model", 3, "expected text"),
    ("colour", "red", "unknown setting 'colour'"),
])
def test_rejected_values_name_their_source(name, value, message):
    with pytest.raises(UsageError, match=f"^where: .*{message}"):
        check(name, value, "where")


@pytest.mark.parametrize("measured, used, noted", [(3.5, 3.5, False), (20.0, 20.0, False), (27.25, 20.0, True)])
def test_a_measured_flow_becomes_one_that_flow_accepts(measured, used, noted):
    from nova_cli.settings import check, usable_flow

    value, note = usable_flow(measured)
    assert value == used and check("flow", value, "--flow") == used
    assert (note is not None) == noted
    if noted:
        assert "27.25" in note and "using 20" in note
