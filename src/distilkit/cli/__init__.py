"""The `distilkit` command line: each command parses flags into a Config and calls the library.

Commands live in one module per stage of the pipeline; importing them registers them on ``app``.
"""

from distilkit.cli import compress, mlm_head, pipeline, run, ship, tasks  # noqa: F401  (registration)
from distilkit.cli.app import app, main

__all__ = ["app", "main"]
