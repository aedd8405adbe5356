"""Nothing touches a GPU other than the pipeline's: checked on the CPU with a recording stand-in
for ``torch.cuda`` (streams, events, synchronize, memory statistics, the current device)."""

from contextlib import contextmanager

import pytest
import torch

from nova_core import devices, sampling_fast
from nova_core.timing import StageTimer


class FakeCuda:
    """Records which device each call names; ``current`` is the device made current."""

    def __init__(self):
        self.calls, self.current = [], None

    def stream_of(self, device):
        return ("stream", torch.device(device).index)

    def install(self, monkeypatch):
        fake = self

        class Event:
            def __init__(self, enable_timing=False):
                self.stream, self.waited = None, 0

            def record(self, stream=None):
                fake.calls.append(("record", stream))
                self.stream = stream

            def synchronize(self):
                fake.calls.append(("wait", self.stream))
                self.waited += 1

            def elapsed_time(self, other):
                return 1.0

        @contextmanager
        def device(d):
            before, fake.current = fake.current, torch.device(d).index
            try:
                yield
            finally:
                fake.current = before

        @contextmanager
        def stream(s):
            fake.calls.append(("stream", s))
            yield

        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "device", device)
        monkeypatch.setattr(torch.cuda, "stream", stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: self.stream_of(d))
        monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: self.calls.append(("sync", d)))
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: self.calls.append(("reset", d)))
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: self.calls.append(("peak", d)) or 2**30)
        return self


@pytest.fixture
def cuda(monkeypatch):
    return FakeCuda().install(monkeypatch)


GPU1 = torch.device("cuda:1")


def test_device_scope_makes_the_device_current_and_is_a_no_op_on_the_cpu(cuda):
    with devices.device_scope("cuda:1"):
        assert cuda.current == 1
    assert cuda.current is None
    with devices.device_scope("cpu"):
        assert cuda.current is None


def test_synchronize_and_memory_statistics_name_their_device(cuda):
    devices.synchronize("cuda:1")
    devices.reset_peak_memory("cuda:1")
    assert devices.peak_memory_gib("cuda:1") == 1.0
    devices.synchronize("cpu")
    assert devices.peak_memory_gib("cpu") is None
    assert cuda.calls == [("sync", GPU1), ("reset", GPU1), ("peak", GPU1)]


def test_stage_timer_records_on_its_devices_stream_and_syncs_that_device(cuda):
    timer = StageTimer("cuda:1")
    with timer("spatial"):
        pass
    assert timer.totals() == {"spatial": 0.001}
    assert cuda.calls == [("record", ("stream", 1)), ("record", ("stream", 1)), ("sync", GPU1)]


def test_pipeline_calls_run_with_the_execution_device_current(cuda):
    from nova_core.pipeline import on_execution_device

    class Pipe:
        execution_device = GPU1

        @on_execution_device
        def __call__(self):
            return cuda.current

    assert Pipe()() == 1 and cuda.current is None


def test_pinned_noise_waits_for_a_buffers_copy_before_rewriting_it(cuda):
    generator = torch.Generator().manual_seed(3)
    staged = sampling_fast.NoiseStream(generator, 2, (1, 4, 2, 2), "cpu", 2)
    staged.device, staged.staged = GPU1, True  # the pinned path, its copies stand in on the CPU
    staged.buffers.append(torch.empty_like(staged.buffers[0]))
    staged.events = [None, None]
    copies = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):  # a copy to "cuda:1" is a plain CPU copy here
        if args and args[0] == GPU1:
            copies.append(kwargs.get("non_blocking"))
            return self.clone()
        return real_to(self, *args, **kwargs)

    plain = sampling_fast.NoiseStream(torch.Generator().manual_seed(3), 2, (1, 4, 2, 2), "cpu", 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "to", to)
        draws = [staged.next() for _ in range(3)]
    for got in draws:
        torch.testing.assert_close(got, plain.next(), atol=0, rtol=0)  # the same numbers, in order
    assert copies == [True, True, True]
    stream = ("stream", 1)
    assert cuda.calls == [("stream", stream), ("record", stream),  # set 1: buffer 1, no wait
                          ("stream", stream), ("record", stream),  # set 2: buffer 0, no wait
                          ("wait", stream), ("stream", stream), ("record", stream)]  # set 3: buffer 1 again


def test_tf32_is_restored():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with devices.tf32(False):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        with devices.tf32(True):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
