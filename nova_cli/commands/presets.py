"""nova presets: what each preset sets, and where preset files are read from."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from ..presets import PresetBook, user_folder
from ..report import Reporter, print_result


def presets(
    name: Annotated[Optional[str], typer.Argument(help="Show only this preset.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the presets as one JSON object.")] = False,
):
    """List the presets (bundled and your own) and the settings each one sets."""
    from rich.table import Table

    book = PresetBook.default()
    chosen = [book.get(name)] if name else book.all()
    if as_json:
        print(json.dumps({p.name: {"description": p.description, "origin": p.origin, "path": str(p.path),
                                   "settings": p.values} for p in chosen}, indent=2))
        return
    table = Table(title="nova presets", title_justify="left")
    for column in ("preset", "from", "settings", "description"):
        table.add_column(column, overflow="fold")
    for p in chosen:
        values = ", ".join(f"{k}={v}" for k, v in p.values.items())
        table.add_row(p.name, p.origin, values, p.description)
    print_result(table)
    bundled = next((str(folder) for folder, origin in book.folders if origin == "bundled"), "not found")
    Reporter().note(f"bundled: {bundled}\nyours:   {user_folder()} (a file there replaces a bundled preset"
                    " of the same name)\nt2i starts from 'image', t2v/i2v/extend from 'video'; --preset adds"
                    " on top, flags override.")


def register(app: typer.Typer) -> None:
    app.command("presets")(presets)
