"""Is a batch output already made? Only if it exists and its sidecar describes the same job.

A name proves nothing: two prompts can share their first words, and the same prompt with other
settings has the same name. So a batch compares what decides an output's content (command,
prompt, negative prompt, seed, model and revision, input file, settings) between the job and the
sidecar of the file that is there, and says what differs when it redoes a job.

How an output is computed is not part of it: device, low-memory mode, and the dtype unless the
job asks for one (``auto`` is float16 on GPUs and float32 on CPUs, and the ranks of a torchrun
batch may differ in that).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .naming import sidecar_path

NOT_IDENTITY = ("presets", "output_frames", "latent_frames", "low_memory", "num")  # how, or made of the rest


def identity(record: dict) -> dict:
    """The part of a sidecar (or of a planned job's record) that decides the output."""
    settings = {k: v for k, v in (record.get("settings") or {}).items() if k not in NOT_IDENTITY}
    if record.get("command") == "extend":
        settings.pop("flow", None)  # the measured value: `flow_setting` is what was asked
    model = record.get("model") or {}
    if model.get("revision"):
        checkpoint = f"{model.get('id')}@{model['revision']}"
    else:  # a local folder: the same folder however it was spelled
        checkpoint = _absolute(model.get("folder") or model.get("id"))
    source = record.get("input") or {}
    return {"command": record.get("command"), "prompt": record.get("prompt"),
            "negative_prompt": record.get("negative_prompt") or "", "seed": record.get("seed"),
            "model": checkpoint, "input": _absolute(source.get("path")), "input_sha256": source.get("sha256"),
            "settings": settings}


def _absolute(path) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


def fingerprint(record: dict) -> str:
    """8 hex digits of the job's identity: what makes a batch name unique when words collide."""
    text = json.dumps(identity(record), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def read_sidecar(output: Path) -> dict | None:
    try:
        record = json.loads(sidecar_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def difference(expected: dict, output: Path) -> str | None:
    """None if ``output`` is the job described by ``expected``; otherwise why it is not."""
    if not output.is_file():
        return "no output" if not output.exists() else f"{output.name} is not a file"
    found = read_sidecar(output)
    if found is None:
        return "no readable sidecar"
    want, have = identity(expected), identity(found)
    if have["input_sha256"] is None:  # a sidecar from before inputs were hashed: the path must do
        want["input_sha256"] = None
    if expected.get("dtype") and found.get("dtype") != expected["dtype"]:
        return f"dtype changed ({found.get('dtype')} -> {expected['dtype']})"
    for key in ("command", "seed", "model"):
        if want[key] != have[key]:
            return f"{key} changed ({have[key]} -> {want[key]})"
    for key, why in (("prompt", "another prompt"), ("negative_prompt", "another negative prompt"),
                     ("input", "another input file"), ("input_sha256", "the input file changed")):
        if want[key] != have[key]:
            return why
    changed = [f"{k} {have['settings'].get(k)} -> {want['settings'].get(k)}"
               for k in sorted(set(want["settings"]) | set(have["settings"]))
               if want["settings"].get(k) != have["settings"].get(k)]
    if changed:
        return f"settings changed ({', '.join(changed)})"
    return None
