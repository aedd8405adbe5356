"""Data order and per-sample draws: functions of (seed, step, position) only."""

from collections import Counter

import torch

from nova_core.training.cache import TrainingCache
from nova_core.training.data import BatchMaker, BatchPlan, SampleSettings, generator
from nova_core.training.loss import NoiseSchedule
from nova_core.loading import load_scheduler
from tests.conftest import TINY_T2V


def test_every_item_once_per_epoch_and_batches_of_one_length():
    lengths = [3, 3, 1, 3, 1, 3, 3]
    plan = BatchPlan(lengths, batch_size=2, seed=5)
    assert plan.batches_per_epoch == 3 + 1  # five 3-frame items -> 3 batches (last filled up), two images -> 1
    for epoch in range(3):
        batches = [plan.batch(epoch * plan.batches_per_epoch + i) for i in range(plan.batches_per_epoch)]
        assert all(len({lengths[i] for i in b}) == 1 and len(b) == 2 for b in batches)
        counts = Counter(i for b in batches for i in b)
        assert set(counts) == set(range(7)) and sum(counts.values()) == 8
    assert plan.epoch_of(plan.batches_per_epoch) == 1
    again = BatchPlan(lengths, 2, 5)
    assert [again.batch(s) for s in range(9)] == [BatchPlan(lengths, 2, 5).batch(s) for s in range(9)]
    assert [plan.batch(s) for s in range(4)] != [plan.batch(s) for s in range(4, 8)]  # reshuffled per epoch


def test_generators_are_keyed():
    draw = lambda *k: torch.rand(3, generator=generator(*k))  # noqa: E731
    assert torch.equal(draw(0, 1, 2), draw(0, 1, 2))
    assert not torch.equal(draw(0, 1, 2), draw(0, 2, 1)) and not torch.equal(draw(0, 1, 2), draw(1, 1, 2))


def test_a_sample_does_not_depend_on_its_batch_neighbours(t2v_cache):
    cache = TrainingCache(t2v_cache)
    schedule = NoiseSchedule(load_scheduler(TINY_T2V, "DDPMScheduler"))
    maker = BatchMaker(cache, schedule, SampleSettings(24, 16, caption_dropout=0.5), seed=0)
    whole = maker.make(7, [0, 1, 2, 3], [0, 1, 2, 3])
    part = maker.make(7, [2, 3], [2, 3])
    rows = 2 * 3  # two clips of three frames
    for key in ("latents", "motion_flow"):  # per clip
        assert torch.equal(whole.tensors[key][2:], part.tensors[key])
    for key in ("mask", "known_lengths", "timestep_indices"):  # per frame row (repeat-major for timesteps)
        got = whole.tensors[key]
        got = got.view(4, 4 * 3, -1)[:, rows:].flatten(0, 1) if key == "timestep_indices" else got[rows:]
        assert torch.equal(got.reshape(part.tensors[key].shape), part.tensors[key])
    noise = whole.tensors["noise"].view(4, 4, 3, 24, 16)[:, 2:]
    assert torch.equal(noise.flatten(0, 2), part.tensors["noise"])
    assert whole.dropped[2:] == part.dropped and whole.captions[2:] == part.captions
    first, rest = maker.hidden_counts(7, [0, 1, 2, 3])
    hidden = whole.tensors["mask"].view(4, 3, 24)
    assert (first, rest) == (4 * int(hidden[:, 0].sum()), 4 * int(hidden[:, 1:].sum()))


def test_full_mask_share_reaches_the_batches(t2v_cache):
    cache = TrainingCache(t2v_cache)
    schedule = NoiseSchedule(load_scheduler(TINY_T2V, "DDPMScheduler"))
    every = BatchMaker(cache, schedule, SampleSettings(24, 16, full_mask_share=1.0), seed=0).make(3, [0, 1], [0, 1])
    assert (every.tensors["mask"] == 1).all() and (every.tensors["known_lengths"] == 0).all()
    some = BatchMaker(cache, schedule, SampleSettings(24, 16), seed=0).make(3, [0, 1], [0, 1])
    assert (some.tensors["known_lengths"] > 0).any()
