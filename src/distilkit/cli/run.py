"""`distilkit run RECIPE [--set key=value ...]`: a pinned recipe (recipes/*.toml) run as its command (recipes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distilkit.cli.app import app, console, out_console, user_errors
from distilkit.cli.app import run_command as _run


@app.command("run")
def run(
    recipe: Annotated[Path, typer.Argument(help="A recipe file, e.g. recipes/embedding-student-3-layers.toml.")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Change one config field: key=value (repeat the flag).")
    ] = None,
) -> None:
    """Run a pinned recipe: the configuration behind a recorded result, with the figure it reached."""
    from distilkit.recipes import load_recipe

    with user_errors():
        loaded = load_recipe(recipe, overrides or ())
        loaded.config()  # every problem of the config before any work
    measured = loaded.measured
    console.print(
        f"recipe {loaded.name}: distilkit {loaded.command}; measured {measured['figure']} "
        f"({measured['results']}; {measured['hardware']})",
        highlight=False,
        soft_wrap=True,
    )
    _run(lambda bar: loaded.run(bar), label=loaded.command)
    out = loaded.settings.get("out")
    out_console.print(f"recipe {loaded.name} done" + (f": {out}" if out else ""))
