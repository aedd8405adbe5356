"""One generation job, from checked settings to files on disk; shared by the commands and batch.

``plan_job`` decides everything that can be decided without weights (checkpoint kind, seeds,
output paths); ``run_job`` reads the inputs, prints the plan line, loads the model, generates and
writes each output with its sidecar.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import extend, generate, media, naming, writing
from .errors import MediaError, UsageError
from .progress import Stages
from .runtime import Checkpoint, memory_guard, resolve_device, resolve_dtype
from .settings import Settings

SIDECAR_VERSION = 1
MULTI_OUTPUT = ("t2i", "t2v", "i2v")  # --num N: output i uses seed + i


@dataclass(frozen=True)
class Job:
    command: str  # t2i | t2v | i2v | extend
    prompt: str
    source: Path | None  # i2v image / extend clip
    settings: Settings  # seed resolved
    checkpoint: Checkpoint
    outputs: tuple[Path, ...]
    seeds: tuple[int, ...]  # one per output
    overwrite: bool = False
    local_rank: int | None = None


def random_seed() -> int:
    return secrets.randbelow(2**31)


def check_prompt(command: str, prompt) -> None:
    """t2i and t2v make what the prompt says: an empty one is a mistake (an unset shell variable, a
    blank JSON value), not a request; i2v and extend may go without (their input leads)."""
    if prompt is not None and not isinstance(prompt, str):
        raise UsageError("the prompt must be text")
    if command in ("t2i", "t2v") and not (prompt or "").strip():
        raise UsageError(f"{command} needs a prompt: describe what to generate")


def plan_job(command: str, prompt: str | None, source, settings: Settings, checkpoint: Checkpoint,
             out: str | None, *, unique: bool = True, overwrite: bool = False,
             local_rank: int | None = None) -> Job:
    check_prompt(command, prompt)
    if command != "t2i" and not checkpoint.is_video:
        raise UsageError(f"{checkpoint.name} is an image checkpoint (2D VAE): {command} needs a video one"
                         " such as BAAI/nova-d48w1024-osp480")
    if settings.seed is None:
        settings = replace(settings, seed=random_seed())
    if command == "extend":
        extend.window(settings)  # a bad --chunk is a usage error before any file is read
    count = settings.num if command in MULTI_OUTPUT else 1
    seeds = tuple(settings.seed + i for i in range(count))
    source = Path(source) if source is not None else None
    stems = [naming.default_stem(command, prompt, source, s) for s in seeds]
    outputs = naming.plan_outputs(command, out, stems, unique=unique, overwrite=overwrite)
    writing.check_targets(outputs, overwrite=overwrite, unique=unique)
    return Job(command, prompt or "", source, settings, checkpoint, tuple(outputs), seeds, overwrite,
               local_rank)


def plan_line(job: Job, device: str, dtype, extra: str = "") -> str:
    s, (height, width) = job.settings, job.checkpoint.pixel_size
    parts = [job.command, f"model {job.checkpoint.label}", f"{width}x{height}"]
    if job.command == "t2i":
        parts.append(f"{s.num} image{'s' if s.num > 1 else ''}")
    else:
        count = f"{len(job.outputs)} videos of " if len(job.outputs) > 1 else ""
        parts.append(f"{count}{s.frames} frames ({generate.latent_frames(s.frames)} latent)")
    parts.append(f"{s.ar_steps} AR x {s.diffusion_steps} diffusion steps, guidance {s.guidance:g}")
    if extra:
        parts.append(extra)
    seeds = f"seed {job.seeds[0]}" + (f"..{job.seeds[-1]}" if len(job.seeds) > 1 else "")
    low = " low-memory" if s.low_memory else ""
    parts += [seeds, f"{device} {str(dtype).removeprefix('torch.')}{low}"]
    target = str(job.outputs[0]) + (f" (+{len(job.outputs) - 1} more)" if len(job.outputs) > 1 else "")
    return " · ".join(parts) + f" -> {target}"


def run_job(job: Job, pipelines, reporter) -> list[dict]:
    """Generate and write every output of ``job``; returns one record (sidecar + path) per output."""
    started = time.perf_counter()
    s, ckpt = job.settings, job.checkpoint
    device = resolve_device(s.device, job.local_rank)
    dtype = resolve_dtype(s.dtype, device)
    inputs = read_inputs(job, reporter)
    if job.command in ("i2v", "extend") and not job.prompt.strip():
        reporter.warn("no --prompt: NOVA follows captions; describing the motion you want helps a lot")
    reporter.plan(plan_line(job, device, dtype, inputs.get("plan", "")))
    for note in inputs.get("notes", []):
        reporter.note(note)
    for removed in writing.remove_stale_temps_of(job.outputs):
        reporter.note(removed)
    long_video = generate.length_warning(job.command, s)
    if long_video:
        reporter.warn(long_video)

    stages, records = reporter.stages(), []
    with memory_guard(stages, s), stages.shown():
        stages.enter("load")
        pipe = pipelines.get(ckpt, device, dtype, s.low_memory, timer=stages.part)
        stages.stop()
        load_seconds = stages.seconds.pop("load", 0.0)
        for index, (path, seed) in enumerate(zip(job.outputs, job.seeds)):
            kind = "image" if job.command == "t2i" else "video"
            label = f"{kind} {index + 1}/{len(job.outputs)}" if len(job.outputs) > 1 else ""
            result = _generate(job, pipe, seed, inputs, stages, reporter, label)
            timings = {"load": round(load_seconds, 2) if index == 0 else 0.0, **stages.rounded()}
            stages.seconds.clear()
            record = sidecar(job, path, seed, device, dtype, inputs, timings, result.shape)
            stages.label = label  # the output's, not extend's last round
            stages.enter("write", str(path))
            _write(job, path, result, record)
            stages.stop()
            stages.seconds.clear()
            record = {"path": str(path), **record}
            reporter.output(record)
            records.append(record)
    reporter.done(time.perf_counter() - started, [r["path"] for r in records])
    return records


def read_inputs(job: Job, reporter) -> dict:
    """Decode the image or clip (fitted to the model), and measure the clip's flow if asked."""
    size = job.checkpoint.pixel_size
    if job.command == "i2v":
        image, note = media.fit_to_size(media.read_image(job.source), size)
        return {"image": image, "notes": [f"{job.source}: {note}"] if note else [],
                "input": {**source_record(job.source), "fitted": note}, "plan": f"flow {job.settings.flow:g}"}
    if job.command == "extend":
        clip, fps, note = extend.read_clip(job.source, size)
        win = extend.window(job.settings)
        flow, notes = job.settings.flow, [f"{job.source}: {note}"] if note else []
        measured = flow == "auto"
        if measured:
            flow = clip_flow(clip, size, reporter, job.source)
        plan = (f"+{job.settings.steps} x {win.new_frames} frames after {len(clip)} "
                f"(context {win.context} latent), flow {flow:.2f}{' (measured)' if measured else ''}")
        return {"clip": clip, "flow": flow, "notes": notes, "plan": plan,
                "input": {**source_record(job.source), "fps": fps, "frames": len(clip), "fitted": note,
                          "flow_measured": round(flow, 3) if measured else None}}
    if job.command == "t2v":
        return {"plan": f"flow {job.settings.flow:g}"}
    return {}


def source_record(path: Path) -> dict:
    """The input as a sidecar names it: its path, and its SHA-256 (a file replaced under the same
    name is another input)."""
    import hashlib

    try:
        with open(path, "rb") as file:
            return {"path": str(path.absolute()), "sha256": hashlib.file_digest(file, "sha256").hexdigest()}
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from None


def clip_flow(clip: np.ndarray, size, reporter, path) -> float:
    """The clip's motion flow (``clip`` is already at 12 fps and the model's size), within the valid range."""
    from .settings import usable_flow

    value = media.measure_motion_flow(clip, extend.TRAINING_FPS, size)
    reporter.note(f"{path}: motion flow {value:.2f} (measured: OpenCV corners + Lucas-Kanade at 12 fps)")
    used, note = usable_flow(value)
    if note:
        reporter.warn(note)
    return used


def _generate(job: Job, pipe, seed: int, inputs: dict, stages: Stages, reporter, label: str):
    s = job.settings
    if job.command == "t2i":
        return generate.text_to_image(pipe, s, job.prompt, seed, stages, reporter.progress(stages, label))
    if job.command == "t2v":
        return generate.text_to_video(pipe, s, job.prompt, seed, stages, reporter.progress(stages, label))
    if job.command == "i2v":
        return generate.image_to_video(pipe, s, job.prompt, seed, inputs["image"], stages,
                                       reporter.progress(stages, label))
    return extend.extend_clip(pipe, s, job.prompt, seed, inputs["clip"], inputs["flow"], stages,
                              lambda round_label: reporter.progress(stages, round_label))


def describe(job: Job, seed: int, inputs: dict | None = None) -> dict:
    """What decides an output, known before it is made (``nova batch`` compares it with a sidecar's).

    ``inputs`` (from :func:`read_inputs`) add the measured flow and what was done to the input;
    ``dtype`` is the one asked for, None for auto.
    """
    s, inputs = job.settings, inputs or {}
    settings = {
        "presets": list(s.presets), "ar_steps": s.ar_steps, "diffusion_steps": s.diffusion_steps,
        "guidance": s.guidance, "width": job.checkpoint.pixel_size[1], "height": job.checkpoint.pixel_size[0],
        "low_memory": s.low_memory,
    }
    if job.command != "t2i":
        flow = inputs.get("flow", s.flow)
        settings |= {"frames": s.frames, "latent_frames": generate.latent_frames(s.frames),
                     "flow": flow if flow == "auto" else round(flow, 3), "fps": s.fps}
    if job.command in MULTI_OUTPUT:
        settings["num"] = s.num
    if job.command == "extend":
        win = extend.window(s)
        settings |= {"steps": s.steps, "chunk": win.chunk, "context": win.context,
                     "flow_setting": s.flow}
    source = source_record(job.source) if job.source is not None and "input" not in inputs else None
    return {
        "command": job.command,
        "prompt": job.prompt,
        "negative_prompt": s.negative_prompt,
        "seed": seed,
        "model": {"id": job.checkpoint.name, "revision": job.checkpoint.revision,
                  "folder": str(job.checkpoint.folder)},
        "settings": settings,
        "input": inputs.get("input", source),
        "dtype": None if s.dtype == "auto" else s.dtype,
    }


def sidecar(job: Job, path: Path, seed: int, device: str, dtype, inputs: dict, timings: dict,
            shape: tuple) -> dict:
    """Everything needed to reproduce the output (and what it cost)."""
    import torch
    from nova_core import __version__

    known = describe(job, seed, inputs)
    if job.command != "t2i":
        known["settings"]["output_frames"] = int(shape[0])
    return {
        "sidecar_version": SIDECAR_VERSION,
        "nova_version": __version__,
        "command": job.command,
        "output": path.name,
        **{k: known[k] for k in ("prompt", "negative_prompt", "seed", "model", "settings", "input")},
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "torch_version": torch.__version__,
        "timings": timings,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write(job: Job, path: Path, result: np.ndarray, record: dict) -> None:
    if job.command == "t2i":
        text = {"Description": writing.clip_text(job.prompt, writing.PNG_TEXT_BYTES),
                "Software": f"nova {record['nova_version']}",
                "nova": writing.metadata_json(record, writing.PNG_TEXT_BYTES)}
        writing.commit(path, lambda tmp: writing.write_png(tmp, result, text), record, overwrite=job.overwrite)
    else:
        comment = writing.metadata_json({k: record[k] for k in ("prompt", "seed", "model", "nova_version")},
                                        writing.MP4_TAG_BYTES)
        writing.commit(path, lambda tmp: writing.write_mp4(tmp, result, job.settings.fps, comment), record,
                       overwrite=job.overwrite)
