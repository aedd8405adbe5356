"""nova batch FILE: run a job file, resumably, alone or split across torchrun ranks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import options as o

Command = Annotated[Optional[str], typer.Option(
    "--command", "-c", help="Command of jobs that name none: t2i, t2v, i2v or extend (default: i2v for a "
    "job with an image, extend with a clip, else t2i on an image checkpoint and t2v on a video one).",
    show_default=False)]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Print the plan (each job: its outputs, done / to do / invalid) and exit, loading no model.",
    rich_help_panel=o.OUTPUT)]
Seed = Annotated[Optional[int], typer.Option(
    help="Seed of jobs that set none (default: 0, so that a batch is reproducible and resumes).",
    rich_help_panel=o.SAMPLING)]


def _batch(ctx: typer.Context,
           file: Annotated[Path, typer.Argument(help="JSONL jobs, or a text file with one prompt per line.",
                                                show_default=False)],
           command: Command = None, num: o.Num = None, frames: o.Frames = None, flow: o.FlowOrAuto = None,
           fps: o.Fps = None, steps: o.Steps = None, chunk: o.Chunk = None, dry_run: DryRun = False, *,
           common: o.Common):
    """Run many jobs; finished ones are skipped (resume); exit 0 only if every job succeeded.

    Options given here apply to every job; a JSONL job's own keys override them. A job is done when
    its output exists and the output's sidecar says the same prompt, model, seed and settings;
    otherwise it is made again (beside the old file, unless --overwrite). Seeds default to 0.
    Under `torchrun --nproc_per_node N -m nova_cli batch FILE` the jobs are split across the ranks
    (one device each) and rank 0 prints the summary.
    """
    from .. import distributed
    from ..batch import not_run, plan_jobs, read_job_file, run_jobs
    from ..batch_report import plan_records, plan_table, report_invalid, summary
    from ..errors import Interrupted, UsageError
    from ..presets import PresetBook
    from ..report import Reporter, print_result
    from ..runtime import Pipelines
    from ..settings import COMMANDS

    if command is not None and command not in COMMANDS:
        raise UsageError(f"--command {command}: one of {', '.join(COMMANDS)}")
    out = Path(common.out or ".").expanduser()
    if out.suffix and not out.is_dir():
        raise UsageError(f"--out {common.out}: batch writes many files: give a folder (a job's own out "
                         "names its file)")
    flags = {**common.settings, "num": num, "frames": frames, "flow": flow, "fps": fps, "steps": steps,
             "chunk": chunk}
    flags["preset"] = list(flags.get("preset") or [])
    ranks = distributed.from_environment()
    reporter = Reporter(json_lines=common.as_json, quiet=common.quiet)
    entries = read_job_file(file, command)
    planned = plan_jobs(entries, flags, file.parent, out, PresetBook.default(), command=command,
                        overwrite=common.overwrite, local_rank=ranks.local_rank)
    invalid = any(p.error for p in planned)
    if dry_run:
        if ranks.is_main:
            if common.as_json:
                for record in plan_records(planned):
                    print(json.dumps(record, ensure_ascii=False), flush=True)
            elif common.quiet:
                for p in planned:
                    for path in p.job.outputs if p.job else ():
                        print(path, flush=True)
            else:
                print_result(plan_table(planned, str(file)))
        raise typer.Exit(1 if invalid else 0)
    if ranks.is_main:
        report_invalid(planned, reporter)
    results: list = []
    with distributed.process_group(ranks):
        if ranks.is_main:
            ready = sum(p.job is not None for p in planned)
            where = f" across {ranks.world} ranks" if ranks.world > 1 else ""
            reporter.note(f"{file}: {len(planned)} jobs: {ready} to do, "
                          f"{sum(p.status == 'done' for p in planned)} already done, "
                          f"{sum(p.error is not None for p in planned)} invalid{where}")
        try:
            run_jobs(planned, ranks, Pipelines(), reporter, results, debug=bool((ctx.obj or {}).get("debug")))
        except KeyboardInterrupt:
            title = f"nova batch (interrupted{f', rank {ranks.rank}' if ranks.world > 1 else ''})"
            reporter.print(summary(results + not_run(planned, results, ranks), ranks.world, title))
            finished = sum(r.status == "done" for r in results)
            raise Interrupted(f"interrupted after {finished} job{'s' * (finished != 1)}: run the same command "
                              "again to make the rest") from None
        everything = distributed.gather(results, ranks)
    if ranks.is_main:
        reporter.print(summary(everything, ranks.world))
    if any(r.status == "failed" for r in everything):
        raise typer.Exit(1)


# The shared --seed says "default: random"; a batch's is 0 (its help says so).
batch = o.common_options(_batch)
batch.__signature__ = batch.__signature__.replace(parameters=[
    p.replace(annotation=Seed) if p.name == "seed" else p for p in batch.__signature__.parameters.values()])


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
