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
from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from distilkit.errors import DistilkitError

app = typer.Typer(
    help="distilkit — distil a BERT-style teacher into a smaller, faster student, and ship it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
FULL_WIDTH = 10_000  # columns when the output is a file, a pipe or a CI log: tables are never folded or cut


def is_tty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (FORCE_COLOR and COLUMNS do not make a log file one)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class OutputConsole(Console):
    """A rich Console for distilkit's output: text is printed literally, never parsed as markup (an error that
    says ``pip install "distilkit[onnx]"`` keeps its ``[onnx]``; styles come from ``Text``), and when the
    stream is not a terminal, lines and tables take the width they need instead of folding at 80 columns.
    The stream is looked up at each print, so a redirected ``sys.stdout`` (pytest, CliRunner) is honoured."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        return size if is_tty(self.file) else ConsoleDimensions(FULL_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = OutputConsole(stderr=True)
out_console = OutputConsole()


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
        console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.print(Text("interrupted", style="yellow"))
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class TrainProgress:
    """Turns distill/quickstart events into progress and one-line notes on stderr.

    On a terminal: a rich progress bar. Anywhere else (a log file, a pipe, a CI run): plain lines, one when a
    phase starts, one every ``interval`` seconds, and one when it completes, never a half-drawn bar.
    """

    interval = 30.0  # seconds between plain progress lines

    def __init__(self, label: str = "train", interval: float | None = None) -> None:
        self.label = label  # what the step bar is called: distill, train, ...
        self.console = console
        self.plain = not is_tty(console.file)
        self.interval = self.interval if interval is None else interval
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = None
        self.kind = None
        self.state: dict[str, Any] = {}  # the current phase: description, total, completed, info, started
        self.printed: dict[str, Any] | None = None  # plain mode: the state last printed, and when

    def __enter__(self) -> TrainProgress:
        if not self.plain:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.plain:
            if exc[0] is None:
                self._line(final=True)
        else:
            self.progress.__exit__(*exc)

    def _task(self, kind: str, description: str, total: float | None, completed: float = 0) -> None:
        if self.kind != kind:
            if self.plain:
                self._line(final=True)
            elif self.task is not None:
                self.progress.stop_task(self.task)
            if not self.plain:
                self.task = self.progress.add_task(description, total=total, completed=completed, info="")
            self.kind = kind
            self.state = {"description": description, "total": total, "completed": completed, "info": "",
                          "started": time.monotonic(), "first": completed}  # fmt: skip
            self.printed = None

    def _update(self, **fields: Any) -> None:
        self.state.update(fields)
        if not self.plain:
            self.progress.update(self.task, **fields)
            return
        total, completed = self.state["total"], self.state["completed"]
        due = self.printed is None or time.monotonic() - self.printed["at"] >= self.interval
        if due or (total is not None and completed >= total):
            self._line()

    def _line(self, final: bool = False) -> None:
        """Plain mode: print the current phase as one line (``final``: only if that state is not printed yet)."""
        state = {k: self.state.get(k) for k in ("description", "total", "completed", "info")}
        if not self.state or (final and self.printed is not None and self.printed["state"] == state):
            return
        total, completed = state["total"], state["completed"] or 0
        elapsed = time.monotonic() - self.state["started"]
        name = str(state["description"]).removesuffix(" %")  # the bar's "prepare %" reads "prepare: 37/100 (37%)"
        parts = [f"{name}: {completed:,.0f}" + (f"/{total:,.0f} ({completed / total:.0%})" if total else "")]
        if state["info"]:
            parts.append(str(state["info"]))
        parts.append(f"{_clock(elapsed)} elapsed")
        done = completed - (self.state["first"] or 0)
        if total and done > 0 and completed < total:
            parts.append(f"{_clock(elapsed * (total - completed) / done)} left")
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)
        self.printed = {"state": state, "at": time.monotonic()}

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "prepare":
            if self.kind != "prepare":
                self.prepare_started = time.monotonic()
            self._task("prepare", "prepare %", 100)
            seconds = max(time.monotonic() - self.prepare_started, 1e-9)
            info = f"{event.get('tokens', 0):,} tokens  {event.get('tokens', 0) / seconds:,.0f} tok/s"
            done = 100 * event.get("bytes", 0) / max(event.get("total_bytes") or 1, 1)
            self._update(completed=int(done), info=info)
        elif kind == "start":
            self._task("steps", self.label, event["total_steps"], event.get("step", 0))
            self._update()
        elif kind == "step":
            self._task("steps", self.label, event["total_steps"])
            terms = " ".join(f"{k}={v:.4f}" for k, v in event["terms"].items())
            self._update(total=event["total_steps"], completed=event["step"], info=f"loss={event['loss']:.4f} {terms}")
        elif kind == "teacher-logits":  # task-distill labelling --unlabeled text up front
            self._task("teacher-logits", "teacher logits", event["total"])
            self._update(completed=event["done"])
        elif kind in ("note", "stage"):
            self.note(event.get("stage", "note"), event["message"])
        elif kind == "resumed":
            self.note("resumed", f"from step {event['step']} ({event['checkpoint']})", colon=False)

    def note(self, label: str, message: str, colon: bool = True) -> None:
        """``label: message`` on one line, the message printed literally (never parsed as markup)."""
        head = (f"{label}:" if colon else label, "cyan")
        self.console.print(Text.assemble(head, " ", str(message)), highlight=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
