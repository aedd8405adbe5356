"""Masking: ratios from the truncated normal, one order per frame, and the spatial-encoder inputs."""

import torch

from nova_core.training.masking import draw_masks, draw_num_known, spatial_inputs, truncated_normal


def test_truncated_normal_stays_in_bounds_with_the_right_mean():
    x = truncated_normal(torch.Generator().manual_seed(0), 20000, 0.7, 1.0, 0.25)
    assert x.min() >= 0.7 and x.max() <= 1.0
    # N(1, 0.25) cut to [0.7, 1]: mean = 1 - 0.25 * (phi(0) - phi(-1.2)) / (Phi(0) - Phi(-1.2))
    phi = lambda v: torch.exp(torch.tensor(-v * v / 2)) / (2 * torch.pi) ** 0.5  # noqa: E731
    cdf = lambda v: torch.special.ndtr(torch.tensor(v))  # noqa: E731
    expected = 1 - 0.25 * (phi(0.0) - phi(-1.2)) / (cdf(0.0) - cdf(-1.2))
    assert abs(x.mean().item() - expected.item()) < 3e-3


def test_masks_are_per_frame_and_reproducible():
    a = draw_masks(torch.Generator().manual_seed(1), 5, 24)
    b = draw_masks(torch.Generator().manual_seed(1), 5, 24)
    assert torch.equal(a.order, b.order) and torch.equal(a.num_known, b.num_known)
    assert all(sorted(row.tolist()) == list(range(24)) for row in a.order)
    assert len({tuple(row.tolist()) for row in a.order}) == 5  # each frame has its own order
    assert ((a.num_known >= 0) & (a.num_known <= round(0.3 * 24))).all()


def test_spatial_inputs_pad_known_ids_and_mask_the_rest():
    masks = [draw_masks(torch.Generator().manual_seed(s), 3, 16, 0.5, 0.9) for s in range(3)]
    known_ids, lengths, mask = spatial_inputs(masks)
    assert known_ids.shape == (9, int(lengths.max()), 1) and mask.shape == (9, 16, 1)
    order = torch.cat([m.order for m in masks])
    for row in range(9):
        k = int(lengths[row])
        known = set(order[row, :k].tolist())
        assert known_ids[row, :k, 0].tolist() == order[row, :k].tolist()
        assert {i for i in range(16) if mask[row, i, 0] == 0} == known
    assert int(mask.sum()) == 9 * 16 - int(lengths.sum())


def test_a_share_of_frames_hides_every_token():
    plain = draw_masks(torch.Generator().manual_seed(2), 4000, 60)
    none = draw_masks(torch.Generator().manual_seed(2), 4000, 60, full_share=0.0)
    assert torch.equal(plain.num_known, none.num_known) and torch.equal(plain.order, none.order)  # the paper's masks
    assert (plain.num_known == 0).float().mean() < 0.06  # the truncated normal alone: a few %
    half = draw_masks(torch.Generator().manual_seed(2), 4000, 60, full_share=0.5)
    hidden = (half.num_known == 0).float().mean().item()
    assert 0.47 < hidden < 0.57  # the share, plus the few the normal draws anyway
    assert torch.equal(half.num_known, draw_num_known(torch.Generator().manual_seed(2), 4000, 60, full_share=0.5))
    kept = half.num_known > 0  # the other frames keep their truncated-normal draw
    assert torch.equal(half.num_known[kept], plain.num_known[kept])
    assert (draw_masks(torch.Generator().manual_seed(3), 50, 60, full_share=1.0).num_known == 0).all()
