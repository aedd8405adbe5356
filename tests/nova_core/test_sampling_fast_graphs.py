"""CUDA-graph reuse across calls, checked on the CPU with a stand-in for the graphs.

The stand-in "captures" a step by remembering it and "replays" it by re-running it on the static
buffers the graphs own, so a call whose plan, position table, noise or condition did not reach
those buffers (a stale binding) gives another result than the eager fast path.
"""

import pytest
import torch

from nova_core import NOVAPipeline, sampling_fast
from nova_core.sampling import Guidance, sample_video
from tests.conftest import TINY_T2I, TINY_T2V


class Tape:
    def __init__(self, steps, i):
        self.steps, self.i = steps, i

    def replay(self):
        self.out.copy_(self.steps._run(self.i))


class StandIn(sampling_fast.GraphedSteps):
    captures: list = []

    def _capture(self, i):
        StandIn.captures.append(i)
        tape = Tape(self, i)
        tape.out = self._run(i)
        return tape, tape.out


@pytest.fixture
def stand_in(monkeypatch):
    StandIn.captures = []
    monkeypatch.setattr(sampling_fast, "GraphedSteps", StandIn)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    return StandIn


@pytest.fixture(scope="module")
def pipe():
    return NOVAPipeline.from_pretrained(str(TINY_T2V))


def sample(pipe, seed, cache=None, steps=4, scale=5.0, frames=2):
    guidance = Guidance(scale)
    text = pipe.encode_prompt("fireworks", 1, None, None, None, guidance.enabled)
    prefix = pipe.transformer.prefix(text, torch.full((text.size(0),), 5.0))
    return sample_video(pipe.transformer, pipe._fresh_scheduler(None), prefix, num_frames=frames,
                        num_inference_steps=steps, num_diffusion_steps=2, guidance=guidance,
                        generator=torch.Generator().manual_seed(seed), fast=True, cuda_graphs=cache is not None,
                        graph_cache=cache).latents


def test_graphs_are_replayed_by_later_calls_with_their_own_order_and_noise(pipe, stand_in):
    cache = sampling_fast.GraphCache()
    first = sample(pipe, 0, cache)
    steps = cache.steps
    captured = list(stand_in.captures)
    assert captured == list(range(len(captured))) and len(captured) >= 3  # each step once, on frame 0
    torch.testing.assert_close(first, sample(pipe, 0), atol=0, rtol=0)
    second = sample(pipe, 1, cache)  # another token order and other noise, same key
    assert cache.steps is steps and stand_in.captures == captured
    torch.testing.assert_close(second, sample(pipe, 1), atol=0, rtol=0)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("change", [dict(steps=3), dict(scale=1.0)])
def test_a_new_key_drops_the_old_graphs_and_captures_anew(pipe, stand_in, change):
    cache = sampling_fast.GraphCache()
    sample(pipe, 0, cache)
    old = cache.steps
    changed = sample(pipe, 0, cache, **change)
    assert cache.steps is not old
    torch.testing.assert_close(changed, sample(pipe, 0, **change), atol=0, rtol=0)


def key_of(pipe, dtype=torch.float32, batch=1, steps=5, scale=5.0, seed=0):
    from nova_core.sampling import mask_schedule, token_order
    from nova_core.schedulers import TensorScheduler

    model, geo, guidance = pipe.transformer, pipe.transformer.geometry, Guidance(scale)
    sched = TensorScheduler.from_diffusers(pipe._fresh_scheduler(None), 3)
    preds = [int(k) for k in mask_schedule(steps, geo.num_tokens) if k > 0]
    order = token_order(batch, geo.num_tokens, torch.Generator().manual_seed(seed))
    _, plan, noise = sampling_fast.prepare(order, preds, sched, guidance, None, geo, dtype, model.image_decoder)
    c = torch.zeros(batch * (2 if guidance.enabled else 1), geo.num_video_tokens, geo.spatial.width, dtype=dtype)
    return sampling_fast.graph_key(model, plan, sched, guidance, c, model.image_space_embedding(), noise.count)


def test_the_key_holds_what_fixes_a_graph_and_not_the_seed():
    pipe = NOVAPipeline.from_pretrained(str(TINY_T2V))
    base = key_of(pipe)
    assert key_of(pipe, seed=5) == base
    for other in (dict(dtype=torch.bfloat16), dict(batch=2), dict(steps=4), dict(scale=2.0), dict(scale=1.0)):
        assert key_of(pipe, **other) != base, other
    pipe.transformer.to(torch.float64).to(torch.float32)  # same values, new weight storage
    assert key_of(pipe) != base
    flow = NOVAPipeline.from_pretrained(str(TINY_T2I))
    assert key_of(flow) != key_of(flow, steps=4)


def test_the_pipeline_drops_its_graphs_when_it_moves_or_offloads(pipe):
    pipe._cuda_graphs.get("key", lambda: "graphs")
    pipe.to("cpu")
    assert pipe._cuda_graphs.steps is None and pipe._cuda_graphs.key is None
    pipe.enable_low_memory("cpu")
    try:
        with pipe._stage(pipe.transformer):
            pipe._cuda_graphs.get("key", lambda: "graphs")
        assert pipe._cuda_graphs.steps is None  # the weights went back to the CPU
    finally:
        pipe.to("cpu")


def test_graph_cache_builds_once_per_key():
    cache, built = sampling_fast.GraphCache(), []

    def build():
        built.append(1)
        return object()

    a = cache.get(("k", 1), build)
    assert cache.get(("k", 1), build) is a and len(built) == 1
    b = cache.get(("k", 2), build)
    assert b is not a and len(built) == 2
    cache.clear()
    assert cache.get(("k", 2), build) is not b and len(built) == 3
