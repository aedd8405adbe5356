"""``nova bench``: time, TFLOP/s and peak memory per stage, with random weights of a named config."""

from __future__ import annotations

import json
import sys
import time

import typer

from .errors import UsageError

DTYPES = ("float32", "float16", "bfloat16")


def bench(
    config: str = typer.Option("video", "--config", "-c",
                               help="Released repo id or alias (video, image, osp480, sd512, sdxl1024-w768, "
                                    "sdxl1024-w1024, sdxl1024-w1536), or CPU-sized: demo (the bundled model's "
                                    "shapes), tiny-t2v, tiny-t2i."),
    device: str = typer.Option(None, "--device", help="cuda, cuda:N or cpu (default: cuda if available; a "
                                                      "full-size config on the CPU needs --device cpu)."),
    dtype: str = typer.Option(None, "--dtype", help="float16 / bfloat16 / float32 (default: float16 on "
                                                    "CUDA, float32 on the CPU)."),
    frames: int = typer.Option(None, "--frames", help="Video frames, 1 + 4k (default 33 for video configs)."),
    ar_steps: int = typer.Option(64, "--ar-steps", min=1, help="Set-by-set steps per frame."),
    diffusion_steps: int = typer.Option(25, "--diffusion-steps", min=1, help="Denoising steps per set."),
    guidance: float = typer.Option(5.0, "--guidance", help="CFG scale (> 1 doubles the batch)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Videos per call."),
    low_memory: bool = typer.Option(False, "--low-memory", help="Components offloaded between stages, tiled VAE."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs", help="Also time the fast path replaying CUDA graphs "
                                                                  "(captured by an untimed call first)."),
    plain: bool = typer.Option(True, "--plain/--no-plain", help="Also time the plain path (for the speed-up)."),
    kv: bool = typer.Option(True, "--kv/--no-kv", help="Compare the KV cache with recomputing earlier frames."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
):
    """Benchmark generation with random weights (no download): per stage time, TFLOP/s, peak memory;
    fast vs plain path (vs CUDA graphs); KV cache vs recomputation. Stages are announced on stderr."""
    import torch

    from nova_core import bench as core_bench
    from nova_core import released

    try:
        name = released.config(config)[0]
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if device is None and not torch.cuda.is_available() and core_bench.is_full_size(name):
        raise UsageError(f"{name} is full size: on the CPU it takes 10+ minutes and 15+ GB; use --config "
                         f"tiny-t2v or demo (CPU-sized), or --device cpu to run it anyway")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"--device {device}: use cuda, cuda:N or cpu")
    if cuda_graphs and not device.startswith("cuda"):
        raise UsageError("--cuda-graphs needs --device cuda")
    dtype = dtype or ("float16" if device.startswith("cuda") else "float32")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")
    settings = core_bench.BenchSettings(config=config, device=device, dtype=dtype, frames=frames,
                                        ar_steps=ar_steps, diffusion_steps=diffusion_steps, guidance=guidance,
                                        batch=batch, low_memory=low_memory, cuda_graphs=cuda_graphs,
                                        compare_plain=plain, kv_compare=kv)
    started = time.perf_counter()

    def note(message: str) -> None:
        print(f"nova bench [{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    progress = None
    if sys.stderr.isatty():
        from nova_core.progress import RichProgress

        progress = RichProgress()
    try:
        report = core_bench.run(settings, progress=progress, note=note)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        print(json.dumps(report))
    else:
        show(report)


def show(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout)
    shape, steps = report["shape"], report["steps"]
    console.print(f"[bold]{report['config']}[/] on {report['device']}, {report['dtype']}: "
                  f"{shape['frames']} frames ({shape['latent_frames']} latent) of {shape['width']}x{shape['height']}, "
                  f"batch {shape['batch']}, {steps['ar']} set-by-set x {steps['diffusion']} diffusion steps, "
                  f"guidance {steps['guidance']} ({steps['cfg_rows']} rows)")
    table = Table("stage", "seconds", "GFLOP", "TFLOP/s", "what is timed")
    for name, s in report["stages"].items():
        gflop = None if s.get("flop") is None else s["flop"] / 1e9
        table.add_row(name, _fmt(s.get("seconds")), _fmt(gflop), _fmt(s.get("tflop_per_s")), s["covers"])
    console.print(table)
    ts = report["transformer_seconds"]
    console.print(f"transformer (temporal + spatial + head): fast {ts['fast']} s"
                  + (f", plain {ts['plain']} s, fast path speed-up x{report['fast_over_plain_speedup']}"
                     if "plain" in ts else "")
                  + (f", CUDA graphs {ts['graphs']} s (x{report['graphs_over_fast_speedup']} over fast)"
                     if "graphs" in ts else ""))
    console.print(f"VAE decode in {report['vae_dtype']}" + (", tiled (overlap counted: "
                  f"x{report['vae_tile_overlap_flop_factor']} FLOPs)" if report["vae_tiled"] else ""))
    console.print(f"{report['matmul_dtype']} matmul rate: {report['matmul_tflop_per_s']} TFLOP/s"
                  + (f"; spatial transformer at {report['spatial_over_matmul_rate']:.0%} of it"
                     if "spatial_over_matmul_rate" in report else ""))
    noise = report["host_noise"]
    console.print(f"host noise (reference order, CPU): {noise['ms_per_set']} ms per set, "
                  f"{noise['seconds_per_call']} s per call")
    peak = report["peak_memory_gib"]
    if any(v is not None for v in peak.values()):
        console.print("peak GPU memory (GiB): " + ", ".join(f"{k} {v}" for k, v in peak.items()))
    kv = report.get("kv_cache")
    if kv:
        console.print(f"temporal encoder per frame (ms): with KV cache {kv['per_frame_ms_cached']}, "
                      f"recomputing earlier frames {kv['per_frame_ms_recomputed']} "
                      f"(x{kv['recompute_over_cache']} in total)")


def _fmt(value):
    return "-" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
