"""What ``nova batch`` shows: invalid and failed lines, the plan (``--dry-run``) and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch import Planned, Result


def error(reporter, text: str) -> None:
    """An invalid or failed job: on stderr even with --quiet (errors are never hidden)."""
    from rich.markup import escape

    reporter.console.print(f"[red]error:[/red] {escape(text)}")


def report_invalid(planned: list[Planned], reporter) -> None:
    for p in planned:
        if p.error:
            error(reporter, f"line {p.entry.line}: {p.error}")


STYLE = {"done": "green", "skipped": "cyan", "failed": "red", "invalid": "red", "to do": "yellow",
         "interrupted": "red", "not run": "yellow"}


def summary(results: list[Result], world: int = 1, title: str = "nova batch"):
    """A Rich table: one row per job, in file order (with the rank that ran it under torchrun)."""
    from rich.table import Table

    counts = {s: sum(r.status == s for r in results) for s in STYLE}
    heading = (f"{title}: {counts['done']} done, {counts['skipped']} skipped (already there), "
               f"{counts['failed']} failed")
    heading += "".join(f", {counts[s]} {s}" for s in ("interrupted", "not run") if counts[s])
    table = Table(title=heading, title_justify="left")
    columns = ("line", "command", "job", "status", "seconds", "output / error") + (("rank",) if world > 1 else ())
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in sorted(results, key=lambda r: r.line):
        detail = r.error if r.status == "failed" else ", ".join(Path(o).name for o in r.outputs)
        if r.notes and r.status != "failed":
            detail = "; ".join([detail] * bool(detail) + r.notes)
        cells = [str(r.line), r.command, r.what, f"[{STYLE[r.status]}]{r.status}[/]",
                 f"{r.seconds:.1f}" if r.status == "done" else "", detail]
        table.add_row(*cells, *([str(r.rank)] if world > 1 else []))
    return table


def plan_records(planned: list[Planned]) -> list[dict]:
    """``--dry-run``: per job its line, command, status (done / to do / invalid) and outputs."""
    records = []
    for p in planned:
        record = {"line": p.entry.line, "command": p.command, "job": p.describe(), "status": p.status,
                  "done": [str(d) for d in p.done], "to_do": [str(t) for t in (p.job.outputs if p.job else ())]}
        if p.error:
            record["error"] = p.error
        if p.reasons:
            record["reasons"] = list(p.reasons)
        records.append(record)
    return records


def plan_table(planned: list[Planned], source: str):
    from rich.table import Table

    records = plan_records(planned)
    counts = {s: sum(r["status"] == s for r in records) for s in ("done", "to do", "invalid")}
    table = Table(title=f"{source}: {counts['to do']} to do, {counts['done']} done, {counts['invalid']} invalid "
                        "(dry run: nothing was made)", title_justify="left")
    for column in ("line", "command", "job", "status", "output / error"):
        table.add_column(column, overflow="fold")
    for r in records:
        detail = r.get("error") or ", ".join(Path(o).name for o in r["to_do"] + r["done"])
        detail = "; ".join([detail] + r.get("reasons", []))
        table.add_row(str(r["line"]), r["command"], r["job"], f"[{STYLE[r['status']]}]{r['status']}[/]", detail)
    return table
