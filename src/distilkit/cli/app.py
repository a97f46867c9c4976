"""The typer app shared by every command module, and the glue that turns events and errors into output."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from distilkit.errors import DistilkitError

app = typer.Typer(
    help="distilkit — distil a BERT-style teacher into a smaller, faster student, and ship it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out_console = Console()


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a DistilkitError as one line and exit 2; Ctrl-C exits 130. Bugs still traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    _quiet_libraries()
    # SIGTERM (kill, a scheduler, torchrun tearing down) unwinds like Ctrl-C, so temporary outputs are removed.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    except DistilkitError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class TrainProgress:
    """Turns distill/quickstart events into a rich progress bar and one-line notes."""

    def __init__(self, label: str = "train") -> None:
        self.label = label  # what the step bar is called: distill, train, ...
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None
        self.kind = None

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def _task(self, kind: str, description: str, total: float | None, completed: float = 0) -> None:
        if self.kind != kind:
            if self.task is not None:
                self.progress.stop_task(self.task)
            self.task = self.progress.add_task(description, total=total, completed=completed, info="")
            self.kind = kind

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "prepare":
            if self.kind != "prepare":
                self.prepare_started = time.monotonic()
            self._task("prepare", "prepare %", 100)
            seconds = max(time.monotonic() - self.prepare_started, 1e-9)
            info = f"{event.get('tokens', 0):,} tokens  {event.get('tokens', 0) / seconds:,.0f} tok/s"
            done = 100 * event.get("bytes", 0) / max(event.get("total_bytes") or 1, 1)
            self.progress.update(self.task, completed=int(done), info=info)
        elif kind == "start":
            self._task("steps", self.label, event["total_steps"], event.get("step", 0))
        elif kind == "step":
            self._task("steps", self.label, event["total_steps"])
            self.progress.update(self.task, total=event["total_steps"])
            terms = " ".join(f"{k}={v:.4f}" for k, v in event["terms"].items())
            self.progress.update(self.task, completed=event["step"], info=f"loss={event['loss']:.4f} {terms}")
        elif kind == "teacher-logits":  # task-distill labelling --unlabeled text up front
            self._task("teacher-logits", "teacher logits", event["total"])
            self.progress.update(self.task, completed=event["done"])
        elif kind in ("note", "stage"):
            self.progress.console.print(f"[cyan]{event.get('stage', 'note')}:[/] {event['message']}", highlight=False)
        elif kind == "resumed":
            self.progress.console.print(f"[cyan]resumed[/] from step {event['step']} ({event['checkpoint']})")


def run_command(function: Callable[..., Any], *args: Any, progress: bool = True, label: str = "train") -> Any:
    with user_errors():
        if not progress:
            return function(*args)
        with TrainProgress(label) as bar:
            return function(*args, bar)


def main() -> None:
    """Console-script entry point."""
    import distilkit.cli  # noqa: F401  (registers every command module)

    app(prog_name="distilkit")
