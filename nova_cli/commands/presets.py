"""nova presets: what each preset sets, and where preset files are read from."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from ..presets import PresetBook, user_folder
from ..report import Reporter, print_result


def presets(
    name: Annotated[Optional[str], typer.Argument(help="Show only this preset.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object per preset (JSON Lines), as every listing does.")] = False,
):
    """List the presets (bundled and your own) and the settings each one sets.

    A preset file that cannot be read is reported (on stderr, and in --json as an object with an
    "error") and the others are listed; it fails only where it is used.
    """
    from rich.table import Table

    book = PresetBook.default()
    chosen, broken = ([book.get(name)], []) if name else book.survey()
    reporter = Reporter()
    if as_json:
        for p in chosen:
            print(json.dumps({"name": p.name, "description": p.description, "origin": p.origin,
                              "path": str(p.path), "settings": p.values}))
        for bad, path, error in broken:
            print(json.dumps({"name": bad, "path": str(path), "error": error}))
    else:
        table = Table(title="nova presets", title_justify="left")
        for column in ("preset", "from", "settings", "description"):
            table.add_column(column, overflow="fold", no_wrap=column == "preset")
        for p in chosen:
            values = ", ".join(f"{k}={v}" for k, v in p.values.items())
            table.add_row(p.name, p.origin, values, p.description)
        print_result(table)
        bundled = next((str(folder) for folder, origin in book.folders if origin == "bundled"), "not found")
        reporter.note(f"bundled: {bundled}\nyours:   {user_folder()} (a file there replaces a bundled preset"
                      " of the same name)\nt2i starts from 'image', t2v/i2v/extend from 'video'; --preset"
                      " adds on top, flags override.")
    for _, _, error in broken:
        reporter.warn(f"{error} (not listed; the other presets work)")


def register(app: typer.Typer) -> None:
    app.command("presets")(presets)
