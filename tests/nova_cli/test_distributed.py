"""torchrun's environment -> ranks; every job on exactly one rank."""

from __future__ import annotations

from nova_cli.distributed import Ranks, from_environment


def test_alone_without_torchrun():
    assert from_environment({}) == Ranks() and from_environment({"WORLD_SIZE": "1", "RANK": "0"}) == Ranks()


def test_ranks_from_torchrun():
    assert from_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)


def test_every_job_exactly_once():
    for world in (1, 2, 3, 8):
        owners = [[r for r in range(world) if Ranks(r, world).owns(i)] for i in range(20)]
        assert all(len(o) == 1 for o in owners)
