"""The compress command: flags → CompressConfig → distilkit.compression.run.compress."""

from __future__ import annotations

from distilkit.cli.app import app, out_console
from distilkit.cli.app import run_command as _run
from distilkit.cli.fields import config_command
from distilkit.compression.config import CompressConfig


@app.command()
@config_command(CompressConfig, paths=("out", "exclude"))
def compress(config: CompressConfig) -> None:
    """The best student for a latency, speed-up or retention target, searched under a time budget, and shipped."""
    from distilkit.compression.run import compress as run_compress

    result = _run(lambda bar: run_compress(config, callback=bar), label="compress")
    met = "met" if result.target_met else "NOT met"
    dev = f"dev {result.dev_score:.4f} (teacher {result.teacher_dev_score:.4f})" if result.dev_score is not None else ""
    out_console.print(
        f"chosen {result.chosen}: {result.measured_ms:.2f} ms measured (predicted {result.predicted_ms:.2f}, "
        f"teacher {result.teacher_ms:.2f}), target {met}; {dev}"
    )
    out_console.print(f"model: {result.out / 'model'}; {result.front}; {result.report}")
