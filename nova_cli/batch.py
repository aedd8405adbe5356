"""nova batch: many jobs from one file, resumable, one failure never stopping the rest.

A job file is JSONL (one object per line: ``command``, ``prompt``, ``image``/``clip``, ``out`` and
any setting) or plain text (one prompt per line, all sharing the command line's options). Blank
lines and lines starting with ``#`` are skipped. Every line is planned before any job runs, so
invalid lines are reported first and ``--dry-run`` can show the whole plan.

Resume: a job is done only when its output exists and the output's sidecar describes the same
job (:mod:`nova_cli.resume`); seeds default to 0, so the same line makes the same output. Names
are the prompt's words and the seed; where several jobs of the file would get the same name, or
that name holds another job's output, the job's 8-hex fingerprint is added (``-1a2b3c4d``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import naming, resume
from .batch_report import error
from .errors import CliError, MediaError, UsageError, internal_error
from .jobs import Job, check_prompt, describe, plan_job, run_job
from .runtime import inspect_checkpoint, resolve_device
from .settings import CHECKS, COMMANDS, combine

JOB_KEYS = ("command", "prompt", "image", "clip", "out", "preset")
DEFAULT_SEED = 0  # a batch must be reproducible to be resumable: a random seed would redo every job


@dataclass
class Entry:
    """One line of the job file, parsed but not checked."""

    line: int
    fields: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Planned:
    """One line after planning: what is already there, what is left to make, or why it cannot run."""

    entry: Entry
    command: str = "?"
    job: Job | None = None  # the outputs still to make (None: all there, or invalid)
    done: tuple[Path, ...] = ()  # outputs already there, their sidecars matching the job
    reasons: tuple[str, ...] = ()  # why outputs that were there are redone
    error: str | None = None
    named: bool = False  # its ``out`` names the file (else: a default name in a folder)
    expected: tuple[dict, ...] = ()  # per output, what its sidecar must say (jobs.describe)

    @property
    def status(self) -> str:
        return "invalid" if self.error else "to do" if self.job else "done"

    def describe(self) -> str:
        f = self.entry.fields
        what = str(f.get("prompt") or f.get("image") or f.get("clip") or "")
        return what if len(what) <= 40 else what[:39] + "…"


@dataclass
class Result:
    """What became of one job (plain data: it travels between ranks)."""

    line: int
    command: str
    what: str
    status: str  # done | skipped | failed | interrupted | not run
    rank: int = 0
    seconds: float = 0.0
    outputs: list = field(default_factory=list)
    error: str = ""
    notes: list = field(default_factory=list)


def read_job_file(path: Path, command: str | None) -> list[Entry]:
    """JSONL if the name ends in .jsonl/.ndjson or the first job line starts with '{'; else prompts.

    Lines are decoded one by one, so a line that is not UTF-8 is one invalid job, not a rejected file.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot read the job file ({exc.strerror or exc})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MediaError(f"{path}: saved as UTF-16; save it as UTF-8")
    if b"\x00" in data:
        raise MediaError(f"{path}: not a text file")
    lines = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            line, error = raw.decode("utf-8").strip(), None
        except UnicodeDecodeError as exc:
            line = raw.strip().decode("utf-8", "replace")
            error = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}); save the file as UTF-8"
        if line and not line.startswith("#"):
            lines.append((number, line, error))
    is_jsonl = Path(path).suffix.lower() in (".jsonl", ".ndjson") or bool(lines and lines[0][1].startswith("{"))
    if not is_jsonl:
        if command in ("i2v", "extend"):
            raise UsageError(f"{path}: a plain prompt list needs --command t2i or t2v; {command} jobs name "
                             "their input: write JSONL lines like {\"command\": \"i2v\", \"image\": ...}")
        return [Entry(n, {"prompt": line} | ({"command": command} if command else {}), error)
                for n, line, error in lines]
    return [Entry(n, error=error) if error else _json_entry(n, line) for n, line, error in lines]


def _json_entry(number: int, line: str) -> Entry:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return Entry(number, error=f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(data, dict):
        return Entry(number, error="a job line must be a JSON object")
    fields = {str(k).replace("-", "_"): v for k, v in data.items()}
    if "command" in fields and fields["command"] not in COMMANDS:
        return Entry(number, fields, f"unknown command {fields['command']!r} (one of {', '.join(COMMANDS)})")
    return Entry(number, fields)


def plan_jobs(entries: list[Entry], batch_flags: dict, base: Path, out_folder: Path, book, *,
              command: str | None = None, overwrite: bool = False, local_rank: int | None = None) -> list[Planned]:
    """Settings, checkpoint, outputs and resume state of every job, before any model is loaded.

    Job keys override the batch's flags; presets add up (the batch's, then the job's). Relative
    ``image``/``clip`` paths are read from the job file's folder, relative ``out`` paths written
    under the batch's ``--out`` folder (never outside it). A job with no command (on its line or
    ``command``) is i2v with an ``image``, extend with a ``clip``, else t2i on an image checkpoint
    and t2v on a video one.
    """
    context = _Context(batch_flags, Path(base).absolute(), out_folder, book, command, overwrite, local_rank)
    planned = []
    for entry in entries:
        if entry.error:
            planned.append(Planned(entry, entry.fields.get("command", "?"), error=entry.error))
            continue
        try:
            planned.append(context.plan(entry))
        except CliError as exc:
            planned.append(Planned(entry, context.last_command, error=str(exc)))
        except Exception as exc:  # nova_core errors: unusable checkpoint, Hub not reachable
            from .app import exit_code_for

            known = exit_code_for(exc)
            if known is None:
                raise
            planned.append(Planned(entry, context.last_command, error=known[0]))
    _settle_outputs(planned, overwrite)
    return planned


@dataclass
class _Context:
    flags: dict
    base: Path
    out_folder: Path
    book: object
    command: str | None
    overwrite: bool
    local_rank: int | None
    checkpoints: dict = field(default_factory=dict)
    devices: dict = field(default_factory=dict)
    last_command: str = "?"

    def plan(self, entry: Entry) -> Planned:
        fields = dict(entry.fields)
        command = fields.pop("command", None) or self.command
        self.last_command = command or "?"
        unknown = [k for k in fields if k not in JOB_KEYS and k not in CHECKS]
        if unknown:
            raise UsageError(f"unknown key {unknown[0]!r} (known: {', '.join(JOB_KEYS + tuple(sorted(CHECKS)))})")
        prompt, out = fields.pop("prompt", None), fields.pop("out", None)
        image, clip = fields.pop("image", None), fields.pop("clip", None)
        for key, value in (("prompt", prompt), ("out", out), ("image", image), ("clip", clip)):
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{key} must be text")
        if command is None and (image or clip):
            command = "i2v" if image else "extend"
        for key, owner in (("image", "i2v"), ("clip", "extend")):
            if (image if key == "image" else clip) and command != owner:
                raise UsageError(f"{key} is for {owner} jobs, not {command}")
        source = image if command == "i2v" else clip if command == "extend" else None
        if command in ("i2v", "extend") and not source:
            raise UsageError(f"{command} needs {'an image' if command == 'i2v' else 'a clip'}")
        check_prompt(command or "t2v", prompt)
        presets = list(self.flags.get("preset") or []) + _as_list(fields.pop("preset", None))
        flags = {**self.flags, **fields, "preset": presets}
        if command == "extend" and flags.get("flow") is None:
            flags["flow"] = "auto"
        settings = combine(command or "t2v", flags, self.book)
        checkpoint = self.checkpoint(settings)
        if command is None:  # decided by the checkpoint: its VAE says image or video
            command = "t2v" if checkpoint.is_video else "t2i"
            if command == "t2i":
                settings = combine(command, flags, self.book)
                checkpoint = self.checkpoint(settings)
        self.last_command = command
        if settings.seed is None:
            settings = replace(settings, seed=DEFAULT_SEED)
        source_path = None
        if source:
            source_path = self.base / Path(source).expanduser()
            if not source_path.is_file():
                problem = "is a folder, not a file" if source_path.is_dir() else "no such file"
                raise MediaError(f"{source_path}: {problem}")
        if settings.device not in self.devices:
            self.devices[settings.device] = resolve_device(settings.device, self.local_rank)
        target, named = self.target(out)
        job = plan_job(command, prompt, source_path, settings, checkpoint, target, unique=False,
                       overwrite=self.overwrite, local_rank=self.local_rank)
        return Planned(entry, command, job, named=named, expected=tuple(describe(job, s) for s in job.seeds))

    def checkpoint(self, settings):
        key = (settings.model, settings.revision)
        if key not in self.checkpoints:
            self.checkpoints[key] = inspect_checkpoint(*key)
        return self.checkpoints[key]

    def target(self, out: str | None) -> tuple[str, bool]:
        """Where the job writes, and whether ``out`` names its file; relative outs stay in --out."""
        if not out:
            return str(self.out_folder), False
        path = Path(out).expanduser()
        if not path.is_absolute():
            path = self.out_folder / path
            inside = self.out_folder.resolve()
            if not path.resolve().is_relative_to(inside):
                raise UsageError(f"out {out}: outside the --out folder {self.out_folder}; name a file inside "
                                 "it (an absolute path, if you mean another place)")
        target = str(path) + ("/" if out.endswith(("/", "\\")) else "")
        return target, not naming.is_folder(target)


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _settle_outputs(planned: list[Planned], overwrite: bool) -> None:
    """Resume state of every output: done (here or under its fingerprinted name), or where to make it.

    Two lines that are the same job, or name the same file, are refused; default names that two
    jobs of the file share get each job's fingerprint.
    """
    owners: dict[Path, int] = {}
    wanted: dict[Path, set] = {}
    identities: dict[str, int] = {}
    for p in planned:
        if p.job is None:
            continue
        keys = [json.dumps(resume.identity(r), sort_keys=True, default=str) for r in p.expected]
        twin = next((identities[k] for k in keys if k in identities), None)
        clash = next((owners[path] for path in p.job.outputs if path in owners), None) if p.named else None
        if twin is not None:
            p.error = (f"the same job as line {twin} (same prompt, seed and settings): for another take, give it "
                       "a seed (in a JSONL line)")
        elif clash is not None:
            p.error = f"writes {p.job.outputs[0].name}, like line {clash}: give it another seed or out"
        if p.error:
            p.job = None
            continue
        identities.update({k: p.entry.line for k in keys})
        if p.named:
            owners.update({path: p.entry.line for path in p.job.outputs})
        for path, key in zip(p.job.outputs, keys):
            wanted.setdefault(path, set()).add(key)
    for p in planned:
        if p.job is None:
            continue
        done, todo, reasons = [], [], []
        for path, seed, record in zip(p.job.outputs, p.job.seeds, p.expected):
            found, target, reason = _settle(path, record, len(wanted[path]) > 1, overwrite)
            if found is not None:
                done.append(found)
            else:
                todo.append((target, seed))
                reasons += [reason] if reason else []
        p.done, p.reasons = tuple(done), tuple(reasons)
        if todo and not _refuse_folders(p, [t for t, _ in todo]):
            p.job = replace(p.job, outputs=tuple(t for t, _ in todo), seeds=tuple(s for _, s in todo))
        elif not todo:
            p.job = None


def _settle(path: Path, record: dict, shared: bool, overwrite: bool) -> tuple[Path | None, Path | None, str]:
    """(the output already there, or None; else where to make it; and why what was there is redone)."""
    alternative = path.with_name(f"{path.stem}-{resume.fingerprint(record)}{path.suffix}")
    if not overwrite:
        for candidate in (path, alternative):
            if resume.difference(record, candidate) is None:
                return candidate, None, ""
    reason = ""
    if path.is_file():
        why = resume.difference(record, path) or "--overwrite"
        reason = (f"replaced: {why}" if overwrite and not shared else f"redone: {why}; {path.name} kept")
    if overwrite:
        return None, alternative if shared else path, reason
    if shared or path.exists() or naming.sidecar_path(path).exists():
        return None, naming.free_names([alternative])[0], reason
    return None, path, reason


def _refuse_folders(p: Planned, targets: list[Path]) -> bool:
    """An output or sidecar path that is a folder cannot be replaced: the job is invalid, now."""
    for target in targets:
        for path in (target, naming.sidecar_path(target)):
            if path.is_dir():
                p.job, p.error = None, f"{path} is a folder: move it, or give the job another out"
                return True
    return False


def run_jobs(planned: list[Planned], ranks, pipelines, reporter, results: list, *, debug: bool) -> list[Result]:
    """This rank's jobs, in file order, appended to ``results`` as they finish (so that Ctrl-C keeps
    what finished); failures are recorded and the rest go on."""
    from .app import exit_code_for

    mine = [p for i, p in enumerate(planned) if ranks.owns(i)]
    runnable = sum(p.job is not None for p in mine)
    count = 0
    for p in mine:
        result = _result(p, ranks.rank)
        for path in p.done:  # already there (a t2i job may also have images left to make)
            reporter.output({"path": str(path), "skipped": True, **(resume.read_sidecar(path) or {})})
        if p.job is not None:
            count += 1
            where = f"rank {ranks.rank}: " if ranks.world > 1 else ""
            reporter.note(f"{where}job {count}/{runnable} (line {p.entry.line})")
            for reason in p.reasons:
                reporter.note(f"line {p.entry.line}: {reason}")
            started = time.perf_counter()
            try:
                records = run_job(p.job, pipelines, reporter)
                result.status = "done"
                result.outputs += [r["path"] for r in records]
            except KeyboardInterrupt:
                result.status = "interrupted"
                results.append(result)
                raise
            except Exception as exc:
                result.status = "failed"
                result.error = (exit_code_for(exc) or internal_error(exc, debug))[0]
                if debug:
                    import traceback

                    reporter.console.print(traceback.format_exc(), markup=False, highlight=False)
                error(reporter, f"line {result.line} failed: {result.error}")
            result.seconds = round(time.perf_counter() - started, 2)
        results.append(result)
    return results


def _result(p: Planned, rank: int, status: str | None = None) -> Result:
    if status is None:
        status = "failed" if p.error else "skipped" if p.job is None else "not run"
    return Result(p.entry.line, p.command, p.describe(), status, rank, outputs=[str(d) for d in p.done],
                  error=p.error or "", notes=list(p.reasons))


def not_run(planned: list[Planned], results: list[Result], ranks) -> list[Result]:
    """After Ctrl-C: this rank's jobs that never started."""
    seen = {r.line for r in results}
    return [_result(p, ranks.rank) for i, p in enumerate(planned) if ranks.owns(i) and p.entry.line not in seen]
