"""nova download and nova models: the released checkpoints and the local Hugging Face cache."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..report import Reporter, print_result

CacheDir = Annotated[Optional[str], typer.Option(
    help="Hugging Face cache folder (default: $HF_HUB_CACHE or ~/.cache/huggingface/hub).")]


def download(
    model: Annotated[str, typer.Argument(help="Hub repo id (or a preset name: its model).", show_default=False)],
    revision: Annotated[Optional[str], typer.Option(help="Branch, tag or commit hash.")] = None,
    cache_dir: CacheDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the folder.")] = False,
):
    """Fetch the files a checkpoint needs (configs, weights, tokenizer) into the Hugging Face cache."""
    from nova_core import hub

    from ..presets import PresetBook

    book = PresetBook.default()
    if book.has(model) and not hub.is_repo_id(model):
        model = book.get(model).values.get("model") or model
    if not hub.is_repo_id(model):
        raise UsageError(f"{model}: not a Hub repo id (like BAAI/nova-d48w1024-osp480); local folders need no download")
    reporter = Reporter(quiet=quiet)
    reporter.note(f"fetching {model}{' @ ' + revision if revision else ''}: configs, safetensors weights and "
                  f"tokenizer only, into {hub.cache_dir_for(cache_dir)}")
    found = hub.download(model, revision=revision, cache_dir=cache_dir)
    reporter.note(f"{model} revision {found.revision}: use --model {model}"
                  + (f" --revision {found.revision}" if found.revision else "") + " (the revision pins it)")
    print(found.folder)


def models(
    cache_dir: CacheDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per checkpoint.")] = False,
):
    """List the released NOVA checkpoints and the NOVA checkpoints in the local cache."""
    from nova_core import hub
    from nova_core.released import CHECKPOINTS

    cached = {c["repo_id"]: c for c in hub.cached_checkpoints(cache_dir)}
    rows = [dict(repo_id=repo, kind=info["kind"], resolution=info["resolution"], notes=info["notes"],
                 released=True, cached=repo in cached, revisions=cached.get(repo, {}).get("revisions", []),
                 size_on_disk=cached.get(repo, {}).get("size_on_disk"))
            for repo, info in CHECKPOINTS.items()]
    known = {r["repo_id"] for r in rows}
    rows += [dict(repo_id=c["repo_id"], kind=None, resolution=None, notes="", released=False, cached=True,
                  revisions=c["revisions"], size_on_disk=c["size_on_disk"])
             for c in cached.values() if c["repo_id"] not in known]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    from rich.table import Table

    table = Table(title="NOVA checkpoints", title_justify="left")
    for column in ("repo", "kind", "resolution", "cached", "notes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        size = f"yes, {row['size_on_disk'] / 1e9:.2f} GB" if row["cached"] else "no: nova download " + row["repo_id"]
        table.add_row(row["repo_id"], row["kind"] or "?", row["resolution"] or "?", size, row["notes"])
    print_result(table)
    Reporter().note(f"cache: {hub.cache_dir_for(cache_dir)}")


def register(app: typer.Typer) -> None:
    app.command("download")(download)
    app.command("models")(models)
