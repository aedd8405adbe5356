"""nova download and nova models: the released checkpoints and the local Hugging Face cache."""

from __future__ import annotations

import json
from pathlib import Path
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
    local_dir: Annotated[Optional[Path], typer.Option(
        help="Write a plain checkpoint folder here instead of the cache: copy it to a machine without a "
        "network and pass it as --model.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the folder.")] = False,
):
    """Fetch the files a checkpoint needs (configs, weights, tokenizer) into the Hugging Face cache.

    With --local-dir DIR they go into DIR, a folder in the official layout that works as --model DIR
    anywhere (for machines without a network: download there, copy DIR over).
    """
    from nova_core import hub

    from ..presets import PresetBook

    book = PresetBook.default()
    if book.has(model) and not hub.is_repo_id(model):
        model = book.get(model).values.get("model") or model
    if not hub.is_repo_id(model):
        raise UsageError(f"{model}: not a Hub repo id (like BAAI/nova-d48w1024-osp480); local folders need no download")
    reporter = Reporter(quiet=quiet)
    where = local_dir if local_dir is not None else hub.cache_dir_for(cache_dir)
    reporter.note(f"fetching {model}{' @ ' + revision if revision else ''}: configs, safetensors weights and "
                  f"tokenizer only, into {where}")
    found = hub.download(model, revision=revision, cache_dir=cache_dir, local_dir=local_dir)
    if local_dir is not None:
        reporter.note(f"{model} is in {found.folder}: use --model {found.folder} (copy the folder to use it on"
                      " another machine)")
    else:
        reporter.note(f"{model} revision {found.revision}: use --model {model}"
                      + (f" --revision {found.revision}" if found.revision else "") + " (the revision pins it)")
    print(found.folder)


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def params_text(params: int | None) -> str:
    """The zoo's label (0.6B) for released sizes; millions for the small bundled demo."""
    from nova_core.released import zoo_size

    if not params:
        return "?"
    return zoo_size(params) if params >= 1e8 else f"{params / 1e6:.1f}M"


def disk_text(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


def models(
    cache_dir: CacheDir = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object per checkpoint (JSON Lines), as every listing does.")] = False,
):
    """List the released NOVA checkpoints and the NOVA checkpoints in the local cache.

    Sizes are the transformer's parameters, as BAAI's model zoo gives them (exact counts in --json).
    """
    from nova_core import demo, hub
    from nova_core.released import CHECKPOINTS

    cached = {c["repo_id"]: c for c in hub.cached_checkpoints(cache_dir)}
    rows = [dict(repo_id=repo, kind=info["kind"], resolution=info["resolution"], params=info["params"],
                 notes=info["notes"], released=True, cached=repo in cached,
                 revisions=cached.get(repo, {}).get("revisions", []),
                 size_on_disk=cached.get(repo, {}).get("size_on_disk"))
            for repo, info in CHECKPOINTS.items()]
    if demo.available():
        rows.insert(0, dict(repo_id=demo.NAME, kind="video", resolution=demo.resolution(), params=demo.parameters(),
                            notes="bundled: offline, seconds on a CPU; drawn shapes only", released=False,
                            cached=True, revisions=[], size_on_disk=folder_size(demo.CHECKPOINT)))
    known = {r["repo_id"] for r in rows}
    rows += [dict(repo_id=c["repo_id"], kind=None, resolution=None, params=None, notes="", released=False,
                  cached=True, revisions=c["revisions"], size_on_disk=c["size_on_disk"])
             for c in cached.values() if c["repo_id"] not in known]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    from rich.table import Table

    table = Table(title="NOVA checkpoints", title_justify="left")
    table.add_column("repo", no_wrap=True)  # an id split over two lines cannot be copied
    for column in ("kind", "size", "resolution", "cached", "notes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["repo_id"], row["kind"] or "?", params_text(row["params"]), row["resolution"] or "?",
                      disk_text(row["size_on_disk"]) if row["cached"] else "no", row["notes"])
    print_result(table)
    missing = [row["repo_id"] for row in rows if not row["cached"]]
    hint = f"; not cached: get one with `nova download {missing[0]}`" if missing else ""
    Reporter().note(f"cache: {hub.cache_dir_for(cache_dir)}{hint}")


def register(app: typer.Typer) -> None:
    app.command("download")(download)
    app.command("models")(models)
