"""Running one generating command line: presets + flags -> settings -> job -> outputs.

Order matters: what the command line says is checked first, then the input files (a missing image
is reported before a model that is not cached), then the checkpoint's configs and the output paths,
and only then is the model loaded.
"""

from __future__ import annotations

from . import media
from .jobs import plan_job, run_job
from .options import Common
from .presets import PresetBook
from .report import Reporter
from .runtime import Pipelines, inspect_checkpoint
from .settings import combine


def run_command(command: str, prompt: str | None, source, common: Common, rerun=None, **specific) -> list[dict]:
    """``specific``: the command's own settings (frames, flow, ...), None where not given;
    ``rerun``: a sidecar to take every value from (``--from``), under the flags given."""
    reporter = Reporter(json_lines=common.as_json, quiet=common.quiet)
    book = PresetBook.default()
    flags = {**common.settings, **specific}
    if rerun is not None:
        from .rerun import from_sidecar

        base = from_sidecar(rerun, command, flags, book)
        prompt = base.prompt if prompt is None else prompt
        source = base.source if source is None else source
        flags = {**flags, **base.flags}  # from_sidecar left out what the flags set
        for note in base.notes:
            reporter.note(note)
    if command == "extend" and flags.get("flow") is None:
        flags["flow"] = "auto"  # extend's default: the clip's own motion
    settings = combine(command, flags, book)
    check_input(command, source)
    checkpoint = inspect_checkpoint(settings.model, settings.revision)
    job = plan_job(command, prompt, source, settings, checkpoint, common.out, overwrite=common.overwrite)
    return run_job(job, Pipelines(), reporter)


def check_input(command: str, source) -> None:
    """The image or clip opens (header, first frame) before any model is resolved or loaded."""
    if command == "i2v":
        media.probe_image(source)
    elif command == "extend":
        media.probe_video(source)
