"""`distilkit fit-mlm-head`: a masked-LM head fitted on a teacher's frozen encoder (train/mlm_head.py)."""

from __future__ import annotations

from distilkit.cli.app import app, out_console
from distilkit.cli.app import run_command as _run
from distilkit.cli.fields import config_command
from distilkit.train.mlm_head import FitMlmHeadConfig


@app.command("fit-mlm-head")
@config_command(FitMlmHeadConfig, paths=("data", "out"))
def fit_mlm_head(config: FitMlmHeadConfig) -> None:
    """Fit a masked-LM head on a teacher without one (its encoder frozen), so that distill can run the KL and MLM
    terms on it; reports masked-token accuracy on held-out sequences."""
    from distilkit.train.mlm_head import fit_mlm_head as run_fit

    result = _run(lambda bar: run_fit(config, callback=bar), label="fit-mlm-head")
    out_console.print(
        f"{result.steps} steps; held-out masked-token accuracy {result.accuracy:.2%}, loss {result.loss:.3f} "
        f"({result.masked_tokens:,} tokens of {result.heldout_sequences:,} sequences); saved to {result.out}"
    )
