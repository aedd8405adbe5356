"""``nova bench`` on the CPU with the tiny configs (what CI can run)."""

import json

from nova_cli.app import run

FAST = ["--ar-steps", "3", "--diffusion-steps", "2", "--frames", "9"]


def test_bench_json_has_every_number(capsys):
    assert run(["bench", "--config", "tiny-t2v", "--json", *FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["stages"]) == {"text", "temporal", "spatial", "head", "vae_decode"}
    for stage in report["stages"].values():
        assert stage["seconds"] > 0 and stage["flop"] > 0 and stage["covers"]
    assert report["shape"] == {"frames": 9, "latent_frames": 3, "height": 64, "width": 96,
                               "tokens_per_frame": 24, "batch": 1}
    assert report["steps"]["ar"] == 3 and report["dtype"] == "float32" and "CPU" in report["device"]
    assert report["fast_over_plain_speedup"] > 0 and report["matmul_tflop_per_s"] > 0
    kv = report["kv_cache"]
    assert len(kv["per_frame_ms_cached"]) == len(kv["per_frame_ms_recomputed"]) == 3


def test_bench_tables_for_an_image_config(capsys):
    assert run(["bench", "--config", "tiny-t2i", "--ar-steps", "2", "--diffusion-steps", "2", "--no-plain"]) == 0
    out = capsys.readouterr().out
    assert "tiny-t2i" in out and "vae_decode" in out and "what is timed" in out


def test_bench_bad_usage(capsys):
    assert run(["bench", "--config", "nova-xxl"]) == 2
    assert "unknown config" in capsys.readouterr().err
    assert run(["bench", "--config", "tiny-t2v", "--frames", "10"]) == 2
    assert run(["bench", "--config", "tiny-t2v", "--dtype", "int8"]) == 2


def test_bench_cuda_without_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert run(["bench", "--config", "tiny-t2v", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
