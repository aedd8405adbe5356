"""Running one generating command line: presets + flags -> settings -> job -> outputs."""

from __future__ import annotations

from .jobs import plan_job, run_job
from .options import Common
from .presets import PresetBook
from .report import Reporter
from .runtime import Pipelines, inspect_checkpoint
from .settings import combine


def run_command(command: str, prompt: str | None, source, common: Common, **specific) -> list[dict]:
    """``specific``: the command's own settings (frames, flow, ...), None where not given."""
    reporter = Reporter(json_lines=common.as_json, quiet=common.quiet)
    settings = combine(command, {**common.settings, **specific}, PresetBook.default())
    checkpoint = inspect_checkpoint(settings.model, settings.revision)
    job = plan_job(command, prompt, source, settings, checkpoint, common.out, overwrite=common.overwrite)
    return run_job(job, Pipelines(), reporter)
