"""``nova bench`` on the CPU with the tiny configs (what CI can run), and what it refuses."""

import json
import time

import pytest
import torch

from nova_cli.app import run

FAST = ["--ar-steps", "3", "--diffusion-steps", "2", "--frames", "9"]
README_EXAMPLE = ["bench", "--config", "tiny-t2v", "--frames", "9", "--ar-steps", "4", "--diffusion-steps", "4",
                  "--json"]


def test_bench_runs_the_demo_models_shapes_on_the_cpu(capsys):
    assert run(["bench", "--config", "demo", "--json", "--no-plain", "--no-kv", *FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] == {"frames": 9, "latent_frames": 3, "height": 96, "width": 160,
                               "tokens_per_frame": 60, "batch": 1}


def test_bench_json_has_every_number(capsys):
    assert run(["bench", "--config", "tiny-t2v", "--json", *FAST]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report["stages"]) == {"text", "temporal", "spatial", "head", "vae_decode"}
    for stage in report["stages"].values():
        assert stage["seconds"] > 0 and stage["flop"] > 0 and stage["covers"]
    assert report["shape"] == {"frames": 9, "latent_frames": 3, "height": 64, "width": 96,
                               "tokens_per_frame": 24, "batch": 1}
    assert report["steps"]["ar"] == 3 and report["dtype"] == "float32" and "CPU" in report["device"]
    assert report["fast_over_plain_speedup"] > 0 and report["matmul_tflop_per_s"] > 0
    assert report["plain_max_abs_diff_vs_fast"] < 1e-4
    assert report["vae_dtype"] == "float32" and report["vae_tiled"] is False
    assert report["vae_tile_overlap_flop_factor"] == 1.0
    assert set(report["transformer_seconds"]) == set(report["paths"]) == {"fast", "plain"}
    noise = report["host_noise"]
    assert noise["canvases_per_set"] == 2 and noise["ms_per_set"] > 0  # 1 + the DDPM step with t > 0
    assert noise["seconds_per_call"] == pytest.approx(noise["ms_per_set"] * 3 * 3 / 1000, abs=1e-3)
    kv = report["kv_cache"]
    assert len(kv["per_frame_ms_cached"]) == len(kv["per_frame_ms_recomputed"]) == 3
    # Every stage is announced on stderr as it starts (a long bench is never silent).
    for stage in ("building", "text encoder", "fast: timing", "plain: timing", "VAE decode", "KV cache"):
        assert stage in captured.err


def test_the_readmes_cpu_example_takes_well_under_a_minute(capsys):
    start = time.process_time()
    assert run(README_EXAMPLE) == 0
    assert time.process_time() - start < 45
    assert json.loads(capsys.readouterr().out)["shape"]["frames"] == 9


def test_bench_tables_for_an_image_config(capsys):
    assert run(["bench", "--config", "tiny-t2i", "--ar-steps", "2", "--diffusion-steps", "2", "--no-plain"]) == 0
    out = capsys.readouterr().out
    assert "tiny-t2i" in out and "vae_decode" in out and "what is timed" in out and "VAE decode in" in out


def test_bench_bad_usage(capsys):
    assert run(["bench", "--config", "nova-xxl"]) == 2
    assert "unknown config" in capsys.readouterr().err
    assert run(["bench", "--config", "tiny-t2v", "--frames", "10"]) == 2
    assert run(["bench", "--config", "tiny-t2v", "--dtype", "int8"]) == 2
    assert run(["bench", "--config", "tiny-t2v", "--device", "tpu"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_without_a_gpu_a_full_size_config_is_refused_unless_the_cpu_is_asked_for(capsys, monkeypatch):
    from nova_core import bench as core_bench

    start = time.process_time()
    for args in ([], ["--config", "image"], ["--config", "BAAI/nova-d48w1024-sd512"]):
        assert run(["bench", *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "full size" in err and "--config tiny-t2v" in err
        assert "--device cpu" in err
    assert time.process_time() - start < 10  # refused before anything is built
    seen = []
    monkeypatch.setattr(core_bench, "run", lambda settings, **kw: seen.append(settings) or {})
    monkeypatch.setattr("nova_cli.bench.show", lambda report: None)
    assert run(["bench", "--device", "cpu"]) == 0  # asked for explicitly: it runs
    assert seen[0].config == "video" and seen[0].device == "cpu"


def test_bench_cuda_without_gpu(capsys):
    if torch.cuda.is_available():
        return
    assert run(["bench", "--config", "tiny-t2v", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert run(["bench", "--config", "tiny-t2v", "--cuda-graphs", "--device", "cpu"]) == 2
    assert "--cuda-graphs needs" in capsys.readouterr().err


def test_graphs_are_not_timed_in_low_memory_mode():
    from nova_core import bench as core_bench

    settings = core_bench.BenchSettings(config="tiny-t2v", device="cpu", cuda_graphs=True, low_memory=True)
    with pytest.raises(ValueError, match="would time a capture"):
        core_bench.run(settings)


def test_bench_builds_the_vae_in_the_dtype_the_product_loads():
    from nova_core.bench import random_pipeline, vae_flops

    half, _ = random_pipeline("tiny-t2v", "cpu", torch.float16)
    assert half.transformer.dtype == torch.float16 and half.vae.dtype == torch.float32  # force_upcast
    low, _ = random_pipeline("tiny-t2v", "cpu", torch.float16, low_memory=True)
    assert low.vae.dtype == torch.bfloat16 and low.vae.tiling is not None
    # Tiled decoding decodes the overlaps twice: the count follows the tiles.
    latents = torch.zeros(1, 4, 2, 8, 12)
    untiled = vae_flops(half.vae, latents, True)
    half.vae.enable_tiling(4, 2)
    tiled = vae_flops(half.vae, latents, True)
    assert vae_flops(half.vae, latents, True, tiled=False) == untiled
    assert tiled > 1.5 * untiled
