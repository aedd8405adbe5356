"""CUDA-only training paths: bf16 autocast, and FSDP over NCCL (skipped without the GPUs)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from nova_core.training.trainer import Trainer
from tests.conftest import REPO, TINY_T2V
from tests.nova_core.training.helpers import train_config


@pytest.mark.cuda
def test_bf16_autocast_step_is_close_to_float32(t2v_cache, tmp_path):
    fp32 = Trainer(train_config(t2v_cache, tmp_path / "a", **{"train.device": "cuda", "train.mixed_precision": "no"}))
    bf16 = Trainer(train_config(t2v_cache, tmp_path / "b", **{"train.device": "cuda", "train.mixed_precision": "bf16"}))
    assert bf16.transformer.dtype == torch.float32  # master weights stay float32 under autocast
    a, b = fp32.evaluate(0)["loss"], bf16.evaluate(0)["loss"]
    assert b == pytest.approx(a, rel=5e-2)
    metrics = bf16.train_step()
    assert torch.isfinite(torch.tensor(metrics["loss"]))


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP over NCCL needs two GPUs")
def test_fsdp_on_nccl_matches_one_gpu(t2v_cache, tmp_path):
    settings = ["--set", "train.mixed_precision=\"no\"", "--set", "train.steps=2"]
    base = ["-m", "nova_cli", "train", "--model", str(TINY_T2V), "--cache", str(t2v_cache)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    one = subprocess.run([sys.executable, *base, "-o", str(tmp_path / "one"), "--batch-size", "4", *settings],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          *base, "-o", str(tmp_path / "two"), "--batch-size", "4", "--strategy", "fsdp", *settings],
                         env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-2000:]
    read = lambda d: [json.loads(x)["loss"] for x in (tmp_path / d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert read("two") == pytest.approx(read("one"), rel=1e-3)
