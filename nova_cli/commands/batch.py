"""nova batch FILE: run a job file, resumably, alone or split across torchrun ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import options as o

Command = Annotated[str, typer.Option(
    "--command", "-c", help="Command of jobs that name none (and of every line of a plain prompt list): "
    "t2i, t2v, i2v or extend.")]


@o.common_options
def batch(ctx: typer.Context,
          file: Annotated[Path, typer.Argument(help="JSONL jobs, or a text file with one prompt per line.",
                                               show_default=False)],
          command: Command = "t2v", num: o.Num = None, frames: o.Frames = None, flow: o.FlowOrAuto = None,
          fps: o.Fps = None, steps: o.Steps = None, chunk: o.Chunk = None, *, common: o.Common):
    """Run many jobs; existing outputs are skipped (resume); exit 0 only if every job succeeded.

    Options given here apply to every job; a JSONL job's own keys override them. Under
    `torchrun --nproc_per_node N -m nova_cli batch FILE` the jobs are split across the ranks
    (one device each) and rank 0 prints the summary.
    """
    from .. import distributed
    from ..batch import plan_jobs, read_job_file, run_jobs, summary
    from ..errors import UsageError
    from ..presets import PresetBook
    from ..report import Reporter
    from ..runtime import Pipelines
    from ..settings import COMMANDS

    if command not in COMMANDS:
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
    planned = plan_jobs(entries, flags, file.parent, out, PresetBook.default(), overwrite=common.overwrite,
                        local_rank=ranks.local_rank)
    with distributed.process_group(ranks):
        if ranks.is_main:
            ready = sum(p.job is not None for p in planned)
            where = f" across {ranks.world} ranks" if ranks.world > 1 else ""
            reporter.note(f"{file}: {len(planned)} jobs ({ready} valid){where}")
        results = run_jobs(planned, ranks, Pipelines(), reporter, overwrite=common.overwrite,
                           debug=bool((ctx.obj or {}).get("debug")))
        everything = distributed.gather(results, ranks)
    if ranks.is_main:
        reporter.print(summary(everything, ranks.world))
    if any(r.status == "failed" for r in everything):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
