"""nova batch: many jobs from one file, resumable, one failure never stopping the rest.

A job file is JSONL (one object per line: ``command``, ``prompt``, ``image``/``clip``, ``out`` and
any setting) or plain text (one prompt per line, all sharing the command line's options). Blank
lines and lines starting with ``#`` are skipped. Output names are stable (prompt words + seed,
seed 0 unless set), so a job whose outputs exist is done: running the file again resumes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import CliError, MediaError, UsageError, internal_error
from .jobs import Job, plan_job, run_job
from .runtime import inspect_checkpoint
from .settings import CHECKS, COMMANDS, combine
from .writing import sidecar_path

JOB_KEYS = ("command", "prompt", "image", "clip", "out", "preset")
DEFAULT_SEED = 0  # batch outputs must have stable names; a random seed would defeat resume


@dataclass
class Entry:
    """One line of the job file, parsed but not checked."""

    line: int
    fields: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Result:
    """What became of one job (plain data: it travels between ranks)."""

    line: int
    command: str
    what: str
    status: str  # done | skipped | failed
    rank: int = 0
    seconds: float = 0.0
    outputs: list = field(default_factory=list)
    error: str = ""


def read_job_file(path: Path, command: str) -> list[Entry]:
    """JSONL if the name ends in .jsonl/.ndjson or the first job line starts with '{'; else prompts."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path}: cannot read the job file ({exc})") from None
    lines = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    is_jsonl = Path(path).suffix.lower() in (".jsonl", ".ndjson") or bool(lines and lines[0][1].startswith("{"))
    if not is_jsonl:
        if command in ("i2v", "extend"):
            raise UsageError(f"{path}: a plain prompt list needs --command t2i or t2v; {command} jobs name "
                             "their input: write JSONL lines like {\"command\": \"i2v\", \"image\": ...}")
        return [Entry(n, {"command": command, "prompt": line}) for n, line in lines]
    return [_json_entry(n, line, command) for n, line in lines]


def _json_entry(number: int, line: str, command: str) -> Entry:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return Entry(number, error=f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(data, dict):
        return Entry(number, error="a job line must be a JSON object")
    fields = {str(k).replace("-", "_"): v for k, v in data.items()}
    fields.setdefault("command", command)
    if fields["command"] not in COMMANDS:
        return Entry(number, fields, f"unknown command {fields['command']!r} (one of {', '.join(COMMANDS)})")
    return Entry(number, fields)


@dataclass
class Planned:
    entry: Entry
    job: Job | None = None
    error: str | None = None

    def describe(self) -> str:
        f = self.entry.fields
        what = f.get("prompt") or f.get("image") or f.get("clip") or ""
        what = str(what)
        return what if len(what) <= 40 else what[:39] + "…"


def plan_jobs(entries: list[Entry], batch_flags: dict, base: Path, out_folder: Path, book, *, overwrite: bool,
              local_rank: int | None) -> list[Planned]:
    """Settings, checkpoint and output paths of every job; a job that cannot be planned is failed.

    Job keys override the batch's flags; presets add up (the batch's, then the job's). Relative
    ``image``/``clip`` paths are read from the job file's folder, relative ``out`` paths written
    under the batch's ``--out`` folder.
    """
    checkpoints: dict = {}
    planned, owners = [], {}
    for entry in entries:
        if entry.error:
            planned.append(Planned(entry, error=entry.error))
            continue
        try:
            job = _plan_one(entry, batch_flags, base, out_folder, book, checkpoints, overwrite, local_rank)
        except CliError as exc:
            planned.append(Planned(entry, error=str(exc)))
            continue
        except Exception as exc:  # nova_core errors: unusable checkpoint, Hub not reachable
            from .app import exit_code_for

            known = exit_code_for(exc)
            if known is None:
                raise
            planned.append(Planned(entry, error=known[0]))
            continue
        clash = next((owners[p] for p in job.outputs if p in owners), None)
        if clash is not None:
            planned.append(Planned(entry, error=f"writes {job.outputs[0].name}, like line {clash}: give it"
                                                " another seed or out"))
            continue
        owners.update({p: entry.line for p in job.outputs})
        planned.append(Planned(entry, job))
    return planned


def _plan_one(entry, batch_flags, base, out_folder, book, checkpoints, overwrite, local_rank) -> Job:
    fields = dict(entry.fields)
    command = fields.pop("command")
    unknown = [k for k in fields if k not in JOB_KEYS and k not in CHECKS]
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} (known: {', '.join(JOB_KEYS + tuple(sorted(CHECKS)))})")
    prompt, out = fields.pop("prompt", None), fields.pop("out", None)
    image, clip = fields.pop("image", None), fields.pop("clip", None)
    source = image if command == "i2v" else clip if command == "extend" else None
    if command in ("t2i", "t2v") and not (isinstance(prompt, str) and prompt.strip()):
        raise UsageError(f"{command} needs a prompt")
    if command in ("i2v", "extend") and not source:
        raise UsageError(f"{command} needs {'an image' if command == 'i2v' else 'a clip'}")
    for key, value in (("prompt", prompt), ("out", out), ("image", image), ("clip", clip)):
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{key} must be text")
    presets = list(batch_flags.get("preset") or []) + _as_list(fields.pop("preset", None))
    flags = {**batch_flags, **fields, "preset": presets}
    if command == "extend" and flags.get("flow") is None:
        flags["flow"] = "auto"
    settings = combine(command, flags, book)
    if settings.seed is None:
        settings = replace(settings, seed=DEFAULT_SEED)
    key = (settings.model, settings.revision)
    if key not in checkpoints:
        checkpoints[key] = inspect_checkpoint(*key)
    source_path = (base / Path(source).expanduser()) if source else None
    target = str(out_folder / out) if out else str(out_folder)
    return plan_job(command, prompt, source_path, settings, checkpoints[key], target, unique=False,
                    overwrite=overwrite, local_rank=local_rank)


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def run_jobs(planned: list[Planned], ranks, pipelines, reporter, *, overwrite: bool, debug: bool) -> list[Result]:
    """This rank's jobs, in file order; failures are recorded, Ctrl-C stops everything."""
    from .app import exit_code_for

    results, mine = [], [i for i in range(len(planned)) if ranks.owns(i)]
    for count, index in enumerate(mine, 1):
        p = planned[index]
        command = p.entry.fields.get("command", "?")
        result = Result(p.entry.line, command, p.describe(), "failed", ranks.rank)
        if p.error:
            result.error = p.error
        elif not overwrite and all(path.exists() for path in p.job.outputs):
            result.status, result.outputs = "skipped", [str(path) for path in p.job.outputs]
            for path in p.job.outputs:
                reporter.output({"path": str(path), "skipped": True, **_read_sidecar(path)})
        else:
            where = f"rank {ranks.rank}: " if ranks.world > 1 else ""
            reporter.note(f"{where}job {count}/{len(mine)} (line {p.entry.line})")
            started = time.perf_counter()
            try:
                records = run_job(p.job, pipelines, reporter)
                result.status, result.outputs = "done", [r["path"] for r in records]
            except Exception as exc:
                result.error = (exit_code_for(exc) or internal_error(exc, debug))[0]
                if debug:
                    import traceback

                    reporter.console.print(traceback.format_exc(), markup=False, highlight=False)
            result.seconds = round(time.perf_counter() - started, 2)
        if result.status == "failed":
            reporter.warn(f"line {result.line}: {result.error}")
        results.append(result)
    return results


def _read_sidecar(path: Path) -> dict:
    try:
        return json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def summary(results: list[Result], world: int = 1):
    """A Rich table: one row per job, in file order (with the rank that ran it under torchrun)."""
    from rich.table import Table

    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    table = Table(title=f"nova batch: {counts['done']} done, {counts['skipped']} skipped (already there), "
                        f"{counts['failed']} failed", title_justify="left")
    columns = ("line", "command", "job", "status", "seconds", "output / error") + (("rank",) if world > 1 else ())
    for column in columns:
        table.add_column(column, overflow="fold")
    style = {"done": "green", "skipped": "cyan", "failed": "red"}
    for r in sorted(results, key=lambda r: r.line):
        detail = r.error if r.status == "failed" else ", ".join(Path(o).name for o in r.outputs)
        cells = [str(r.line), r.command, r.what, f"[{style[r.status]}]{r.status}[/]",
                 f"{r.seconds:.1f}" if r.status == "done" else "", detail]
        table.add_row(*cells, *([str(r.rank)] if world > 1 else []))
    return table
