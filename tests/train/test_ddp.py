"""Two CPU processes (gloo, launched by torchrun) follow the single-process loss and gradient-norm trajectory."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distilkit.models.student import build_student
from tiny import make_model, make_tokenizer, torchrun, write_token_data


def _distill_args(root: Path, out: str, batch_size: int, grad_accum: int) -> list[str]:
    return [
        "-m", "distilkit.cli", "distill", "--teacher", str(root / "teacher"), "--student", str(root / "student"),
        "--data", str(root / "data"), "--out", str(root / out), "--batch-size", str(batch_size),
        "--grad-accum", str(grad_accum), "--max-steps", "6", "--save-every", "3", "--alpha-hidden", "1",
        "--no-tensorboard", "--device", "cpu",
    ]  # fmt: skip


def _logged(out: Path, key: str) -> list[float]:
    return [json.loads(line)[key] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process_with_same_global_batch(tmp_path):
    teacher = make_model(tmp_path / "teacher", "bert", mlm=True, layers=4)
    build_student(teacher, [0, 3]).save_pretrained(tmp_path / "student")
    make_tokenizer(tmp_path / "student")
    write_token_data(tmp_path / "data", n_sequences=64)
    single = subprocess.run(
        [sys.executable, *_distill_args(tmp_path, "single", batch_size=8, grad_accum=2)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run(
        [*torchrun(2), *_distill_args(tmp_path, "ddp", batch_size=8, grad_accum=1)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stdout[-1500:] + ddp.stderr[-1500:]
    single_losses, ddp_losses = _logged(tmp_path / "single", "loss"), _logged(tmp_path / "ddp", "loss")
    assert len(single_losses) == len(ddp_losses) == 6
    assert ddp_losses == pytest.approx(single_losses, rel=1e-5)
    # With Adam a gradient off by a constant factor changes the updates only through clipping and epsilon, so
    # losses and weights can agree while DDP's world-size rescale is wrong: the norm before clipping must match too.
    single_norms, ddp_norms = _logged(tmp_path / "single", "grad_norm"), _logged(tmp_path / "ddp", "grad_norm")
    assert all(n > 0 for n in single_norms)
    assert ddp_norms == pytest.approx(single_norms, rel=1e-4)
    a = load_file(tmp_path / "single" / "student" / "model.safetensors")
    b = load_file(tmp_path / "ddp" / "student" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
