"""torchrun's environment -> ranks; every job on exactly one rank."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from nova_cli import distributed
from nova_cli.distributed import Ranks, from_environment
from tests.nova_cli.conftest import subprocess_env


def test_alone_without_torchrun():
    assert from_environment({}) == Ranks() and from_environment({"WORLD_SIZE": "1", "RANK": "0"}) == Ranks()


def test_ranks_from_torchrun():
    assert from_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)


def test_every_job_exactly_once():
    for world in (1, 2, 3, 8):
        owners = [[r for r in range(world) if Ranks(r, world).owns(i)] for i in range(20)]
        assert all(len(o) == 1 for o in owners)


def test_a_rank_leaves_with_its_code_and_its_output_flushed():
    # Ranks skip the interpreter's teardown (gloo threads aborted it in CI); nothing printed may be lost.
    code = "import sys; print('summary', end=''); sys.stderr.write('note'); from nova_cli.distributed import leave; leave(3)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert (done.returncode, done.stdout, done.stderr) == (3, "summary", "note")


def test_only_a_torchrun_world_leaves_early():
    assert distributed.under_torchrun({"WORLD_SIZE": "2"})
    assert not distributed.under_torchrun({"WORLD_SIZE": "1"})
    assert not distributed.under_torchrun({})


def test_a_stray_rank_without_a_world_is_one_process():
    # RANK is a generic name (schedulers, shells); without WORLD_SIZE > 1 nova runs alone
    assert from_environment({"RANK": "32"}) == Ranks() and from_environment({"RANK": "3", "WORLD_SIZE": "1"}) == Ranks()


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2"}, "RANK is not set"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 / LOCAL_RANK=0 do not fit WORLD_SIZE=2"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' in the environment is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "x"}, "LOCAL_RANK='x'"),
])
def test_an_impossible_torchrun_environment_is_one_line(env, message):
    from nova_core.errors import InputError

    with pytest.raises(InputError, match=re.escape(message)):
        from_environment(env)
