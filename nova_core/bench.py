"""Benchmark a generation with random weights of a named config: time, TFLOP/s and memory per stage.

No download is needed: the weights are random, the shapes are the checkpoint's (see
:mod:`nova_core.released`), and the work per step does not depend on the values. The numbers say
what was timed (``STAGES``), on which device, in which dtype, at which shape and step counts.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass

import torch

from . import flops as flop_count
from . import loading, released
from .devices import device_scope, peak_memory_gib, reset_peak_memory, synchronize
from .timing import StageTimer

STAGES = {
    "text": "Phi text encoder forward over the prompt and negative-prompt rows (text_token_len tokens each)",
    "temporal": "per frame: previous frame's patches, temporal encoder over the new tokens against the "
                "KV cache, scale-shift layer",
    "spatial": "per set-by-set step: patch embedding, masking, spatial encoder (both halves)",
    "head": "per set: the diffusion loop (head on the set's tokens, guidance, scheduler update)",
    "vae_decode": "VAE decode of all latent frames to pixels, in the VAE dtype the product uses "
                  "(float32 under a float16 pipeline; bfloat16 and tiled in low-memory mode)",
}


@dataclass
class BenchSettings:
    config: str = "video"
    device: str = "cuda"
    dtype: str = "float16"
    frames: int | None = None  # video frames (1 + 4k); None: 33 for video configs, 1 for image ones
    ar_steps: int = 64
    diffusion_steps: int = 25
    guidance: float = 5.0
    batch: int = 1
    low_memory: bool = False
    cuda_graphs: bool = False  # also time the fast path replaying CUDA graphs (captured by an untimed call)
    compare_plain: bool = True
    kv_compare: bool = True
    seed: int = 0


def is_full_size(config: str) -> bool:
    """A released checkpoint's shapes (minutes and > 10 GB on a CPU), not a tiny test or demo config."""
    return released.config(config)[0] not in released.CPU_SIZED


def random_pipeline(name: str, device, dtype, low_memory=False):
    """A NOVAPipeline with random weights in the named config's shapes (no tokenizer needed)."""
    from diffusers import AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler
    from transformers import PhiConfig, PhiModel

    from .pipeline import NOVAPipeline
    from .transformer import NOVATransformer3DModel
    from .vae_opensora import AutoencoderKLOpenSora

    name, desc = released.config(name)
    build_on = "cpu" if low_memory else device
    torch.manual_seed(0)
    with torch.device(build_on):
        transformer = NOVATransformer3DModel.from_config(desc["transformer"])
        vae_cls = AutoencoderKLOpenSora if desc["vae"] == "AutoencoderKLOpenSora" else AutoencoderKL
        vae = vae_cls.from_config(desc["vae_config"])
        text_encoder = PhiModel(PhiConfig(**desc["text_encoder"]))
    if desc["scheduler"] == "DDPMScheduler":
        scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    pipe = NOVAPipeline(transformer.eval(), scheduler, vae.eval(), text_encoder.eval(), None, name_or_path=name)
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # "modules kept in float32: []" is noise for random weights
    try:
        pipe.to(dtype=dtype)
        pipe.vae.to(loading.vae_dtype(dict(pipe.vae.config), dtype))  # as from_pretrained loads it
    finally:
        diffusers_logging.set_verbosity(verbosity)
    if low_memory:  # as the product: bfloat16 VAE under a half-precision pipeline, tiled decode
        pipe.enable_low_memory(device)
    return pipe, desc


def matmul_rate(device, dtype, size=None, repeat=10) -> float:
    """TFLOP/s of a square matmul on this device (the ceiling the stages are compared with)."""
    cuda = torch.device(device).type == "cuda"
    size = size or (8192 if cuda else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeat / (time.perf_counter() - start) / 1e12


def kv_cache_vs_recompute(model, prefix, num_frames, batch, cfg, device):
    """Per-frame temporal cost with the KV cache vs re-running the encoder over all earlier frames."""
    geo = model.geometry
    latents = torch.randn(batch, geo.latent_channels, num_frames, *geo.latent_size, device=device)
    rows = prefix.size(0)
    time_embed = model.video_pos_embed.time_embedding(num_frames)
    space = model.video_pos_embed.space_embedding().to(device, model.dtype)
    cached, recomputed = [], []
    with torch.inference_mode():
        cache = model.video_encoder.new_cache(rows, prefix.size(1) + num_frames * geo.num_video_tokens,
                                              device=device, dtype=model.dtype)
        for t in range(num_frames):
            synchronize(device)
            start = time.perf_counter()
            tokens = model.frame_tokens(latents[:, :, t - 1] if t else None, batch, time_embed, t, space)
            model.video_encoder(torch.cat([tokens, tokens]) if cfg else tokens, prefix if t == 0 else None, cache)
            synchronize(device)
            cached.append(time.perf_counter() - start)
            start = time.perf_counter()
            clip = latents[:, :, : t + 1]
            model.temporal_conditions(prefix, torch.cat([clip, clip]) if cfg else clip)
            synchronize(device)
            recomputed.append(time.perf_counter() - start)
    return {
        "per_frame_ms_cached": [round(1000 * s, 3) for s in cached],
        "per_frame_ms_recomputed": [round(1000 * s, 3) for s in recomputed],
        "recompute_over_cache": round(sum(recomputed) / sum(cached), 3),
        "covers": "temporal encoder only; 'recomputed' runs it over the prefix and frames 0..t for frame t",
    }


PATHS = {
    "fast": "fast path, eager (per-stage times come from this run)",
    "plain": "plain path (the reference's loop)",
    "graphs": "fast path replaying CUDA graphs captured by an earlier, untimed call (a warm call)",
}


def run(settings: BenchSettings, progress=None, note=None) -> dict:
    """Build the random pipeline, time each path on a warm call, decode, count FLOPs.

    ``progress`` (a :class:`~nova_core.progress.NullProgress`) follows the timed sampling calls;
    ``note(message)`` is told each stage as it starts.
    """
    device, dtype = torch.device(settings.device), getattr(torch, settings.dtype)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but no GPU is available")
    if settings.cuda_graphs and settings.low_memory:  # the weights leave the GPU after every call
        raise ValueError("--cuda-graphs with --low-memory would time a capture (the transformer leaves the "
                         "GPU after each call, and its graphs with it); time them without --low-memory")
    if settings.cuda_graphs and device.type != "cuda":
        raise ValueError("--cuda-graphs needs a CUDA device")
    note = note or (lambda message: None)
    name, desc = released.config(settings.config)
    frames = settings.frames or (33 if desc["kind"] == "video" else 1)
    if desc["kind"] == "image" and frames != 1:
        raise ValueError("image configs generate one frame")
    if (frames - 1) % 4:
        raise ValueError(f"video frames must be 1 + 4k, got {frames}")
    note(f"building {name} with random weights ({settings.dtype}, {'low-memory, ' if settings.low_memory else ''}"
         f"on {'the CPU' if settings.low_memory else device})")
    with device_scope(device):
        pipe, desc = random_pipeline(settings.config, device, dtype, settings.low_memory)
        return _run(settings, pipe, desc, frames, device, dtype, progress, note)


def _run(settings, pipe, desc, frames, device, dtype, progress, note) -> dict:
    geo = pipe.transformer.geometry
    latents = 1 + (frames - 1) // 4
    cfg, batch = settings.guidance > 1, settings.batch
    rows, seq = batch * (2 if cfg else 1), geo.text_token_len

    # Text: Phi over random token ids (the tokenizer does no measurable work).
    note("text encoder")
    timer = StageTimer(device)
    generator = torch.Generator().manual_seed(settings.seed)
    ids = torch.randint(0, pipe.text_encoder.config.vocab_size, (rows, seq), generator=generator)
    reset_peak_memory(device)
    with pipe._stage(pipe.text_encoder), torch.inference_mode():
        ids = ids.to(pipe.text_encoder.device)
        pipe.text_encoder(input_ids=ids)  # warm-up
        with timer("text"):
            hidden = pipe.text_encoder(input_ids=ids).last_hidden_state.float().cpu()
    peak = {"text": peak_memory_gib(device)}

    def generate(path, timer=None, frames_=latents, ar=settings.ar_steps, steps=settings.diffusion_steps,
                 progress=None):
        return pipe(prompt_embeds=list(hidden[:batch]), negative_prompt_embeds=list(hidden[batch:]) if cfg else None,
                    max_latent_length=frames_, num_inference_steps=ar, num_diffusion_steps=steps,
                    guidance_scale=settings.guidance, motion_flow=5, output_type="latent",
                    generator=torch.Generator().manual_seed(settings.seed), disable_progress_bar=True,
                    fast=path != "plain", cuda_graphs=path == "graphs", timer=timer, progress=progress).frames

    paths = ["fast"] + (["plain"] if settings.compare_plain else []) + (["graphs"] if settings.cuda_graphs else [])
    seconds_per_path, stage_seconds, graph_info, results = {}, {}, None, {}
    for path in paths:
        if path == "graphs":  # the capture: every step's graph on frame 0, kept by the pipeline
            note("graphs: capturing the set-by-set steps (untimed call)")
            generate(path, frames_=1)
            graphs = pipe._cuda_graphs.steps
            captured = len(graphs.graphs) if graphs is not None else 0
        else:  # warm-up: kernels, allocator
            generate(path, frames_=min(latents, 2), ar=2, steps=2)
        note(f"{path}: timing {latents} latent frame(s) x {settings.ar_steps} set-by-set x "
             f"{settings.diffusion_steps} diffusion steps")
        path_timer = StageTimer(device)
        reset_peak_memory(device)
        synchronize(device)
        start = time.perf_counter()
        results[path] = generate(path, path_timer, progress=progress)
        synchronize(device)
        seconds_per_path[path] = time.perf_counter() - start
        note(f"{path}: {seconds_per_path[path]:.3f} s")  # on record even if a later stage never ends
        stage_seconds[path] = path_timer.totals()
        peak["sampling" if path == "fast" else f"sampling_{path}"] = peak_memory_gib(device)
        if path == "graphs":
            graphs_after = pipe._cuda_graphs.steps
            graph_info = {"captured_before_timing": captured,
                          "captured_in_timed_call": (len(graphs_after.graphs) - captured
                                                     if graphs_after is graphs else len(graphs_after.graphs)),
                          "replayed_from_earlier_capture": graphs_after is graphs}
    result_latents = results["fast"]

    note("VAE decode")
    reset_peak_memory(device)
    with pipe._stage(pipe.vae), torch.inference_mode():
        pipe.decode_latents(result_latents[:, :, :1])  # warm-up
        with timer("vae_decode"):
            pipe.decode_latents(result_latents)
    peak["vae_decode"] = peak_memory_gib(device)
    note(f"VAE decode: {timer.totals()['vae_decode']:.3f} s; peak GiB {peak}")

    prefix_len = seq + (2 if geo.has_motion else 0)
    counted = flop_count.generation(geo, num_frames=latents, num_generated=latents, ar_steps=settings.ar_steps,
                                    diffusion_steps=settings.diffusion_steps, batch=batch, cfg=cfg,
                                    prefix_len=prefix_len)
    counted["text"] = flop_count.text_encoder(pipe.text_encoder.config, seq, rows)
    counted["vae_decode"] = vae_flops(pipe.vae, result_latents, pipe.is_video_model)
    untiled = vae_flops(pipe.vae, result_latents, pipe.is_video_model, tiled=False)
    seconds = dict(stage_seconds["fast"], **timer.totals())
    stages = {}
    for name, covers in STAGES.items():
        secs = seconds.get(name)
        stages[name] = {
            "seconds": None if secs is None else round(secs, 4),
            "flop": int(counted[name]),
            "tflop_per_s": None if not secs else float(f"{counted[name] / secs / 1e12:.4g}"),
            "covers": covers,
        }
    if "graphs" in stage_seconds:
        graphed = stage_seconds["graphs"]
        stages["spatial+head (graphs)"] = {
            "seconds": round(graphed.get("spatial+head", 0), 4),
            "flop": int(counted["spatial"] + counted["head"]),
            "tflop_per_s": float(f"{(counted['spatial'] + counted['head']) / graphed['spatial+head'] / 1e12:.4g}")
            if graphed.get("spatial+head") else None,
            "covers": "spatial encoder + diffusion head replayed in CUDA graphs (not separable)"}
    note("matmul rate")
    rate = matmul_rate(device, torch.bfloat16 if device.type == "cuda" else dtype)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)",
        "dtype": settings.dtype,
        "vae_dtype": str(pipe.vae.dtype).removeprefix("torch."),
        "vae_tiled": bool(getattr(pipe.vae, "tiling", None) or getattr(pipe.vae, "use_tiling", False)),
        "vae_tile_overlap_flop_factor": round(counted["vae_decode"] / untiled, 3) if untiled else None,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "config": pipe.name_or_path,
        "shape": {"frames": frames, "latent_frames": latents, "height": geo.pixel_size[0],
                  "width": geo.pixel_size[1], "tokens_per_frame": geo.num_tokens, "batch": batch},
        "steps": {"ar": settings.ar_steps, "diffusion": settings.diffusion_steps,
                  "guidance": settings.guidance, "cfg_rows": rows},
        "settings": asdict(settings),
        "stages": stages,
        "transformer_seconds": {k: round(v, 4) for k, v in seconds_per_path.items()},
        "transformer_covers": "temporal + spatial + head, wall time of one warm sampling call per path",
        "paths": {k: PATHS[k] for k in seconds_per_path},
        "peak_memory_gib": peak,
        "matmul_tflop_per_s": round(rate, 3),
        "matmul_dtype": "bfloat16" if device.type == "cuda" else settings.dtype,
    }
    if "plain" in seconds_per_path:
        report["fast_over_plain_speedup"] = round(seconds_per_path["plain"] / seconds_per_path["fast"], 3)
    if "graphs" in seconds_per_path:
        report["graphs_over_fast_speedup"] = round(seconds_per_path["fast"] / seconds_per_path["graphs"], 3)
        report["cuda_graphs"] = graph_info
        report["graphs_max_abs_diff_vs_fast"] = float((results["graphs"] - results["fast"]).abs().max())
    if "plain" in results:
        report["plain_max_abs_diff_vs_fast"] = float((results["plain"] - results["fast"]).abs().max())
    report["host_noise"] = host_noise(pipe, geo, batch, settings.diffusion_steps, latents, settings.ar_steps)
    spatial = stages["spatial"]["tflop_per_s"]
    if spatial:
        report["spatial_over_matmul_rate"] = round(spatial / rate, 4)
    if settings.kv_compare and latents > 1:
        note("KV cache vs recompute")
        with pipe._stage(pipe.transformer):
            prefix = torch.randn(rows, prefix_len, geo.temporal.width, device=pipe.execution_device,
                                 dtype=dtype)
            report["kv_cache"] = kv_cache_vs_recompute(pipe.transformer, prefix, latents, batch, cfg,
                                                       pipe.execution_device)
    return report


def host_noise(pipe, geo, batch, diffusion_steps, latents, ar_steps) -> dict:
    """CPU time to draw one set's noise in the reference's order (the fast path stages it in pinned
    memory, overlapping the GPU by at most two sets), and for all sets of the call."""
    from .sampling import mask_schedule
    from .sampling_fast import NoiseStream
    from .schedulers import TensorScheduler

    sched = TensorScheduler.from_diffusers(pipe._fresh_scheduler(None), diffusion_steps)
    stream = NoiseStream(torch.Generator().manual_seed(0), 1 + sum(sched.draws_noise),
                         (batch, geo.latent_channels, *geo.latent_size), "cpu", geo.patch_size)
    stream.next()
    start = time.process_time()
    for _ in range(5):
        stream.next()
    per_set = (time.process_time() - start) / 5
    sets = latents * sum(1 for k in mask_schedule(ar_steps, geo.num_tokens) if k > 0)
    return {"ms_per_set": round(1000 * per_set, 3), "seconds_per_call": round(per_set * sets, 3),
            "canvases_per_set": stream.count,
            "covers": "host CPU time of drawing and patchifying one set's noise; x sets of the call"}


def vae_flops(vae, latents, is_video, tiled=True) -> int:
    """Count the decode's FLOPs on the meta device (shapes only, nothing computed); ``tiled``
    follows the VAE's own tiling, so overlapping tiles are counted as often as they are decoded."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        meta = type(vae).from_config(vae.config)
    if tiled and getattr(vae, "tiling", None):  # the video VAE's spatial tiles
        meta.enable_tiling(*vae.tiling)
    elif tiled and getattr(vae, "use_tiling", False):  # diffusers' AutoencoderKL
        meta.enable_tiling()
    z = torch.empty(latents.shape, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        for i in range(z.size(0)):
            meta.decode(z[i : i + 1] if is_video else z[i : i + 1, :, 0])
    return counter.get_total_flops() * (1 if is_video else z.size(2))
