"""On a GPU: the device and dtype the CLI picks, and low-memory mode staging through CUDA."""

from __future__ import annotations

import pytest

from tests.nova_cli.conftest import T2V, read_mp4

pytestmark = pytest.mark.cuda


def test_auto_device_and_dtype_on_a_gpu(nova):
    result = nova("t2v", "waves", *T2V, "--frames", 5, "--seed", 1, "--json", "--quiet")
    assert result.code == 0, result.err
    record = result.records()[0]
    assert (record["device"], record["dtype"]) == ("cuda:0", "float16")
    assert len(read_mp4(record["path"])[0]) == 5


@pytest.mark.parametrize("command", ["t2v", "extend"])
def test_low_memory_on_a_gpu(nova, media, command):
    source = ["waves"] if command == "t2v" else [media["clip"]]
    result = nova(command, *source, *T2V, "--frames", 5, "--device", "cuda", "--preset", "low-memory", "--json")
    assert result.code == 0, result.err
    record = result.records()[0]
    assert record["device"] == "cuda:0" and record["settings"]["low_memory"] is True
