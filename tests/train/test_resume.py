"""A distill run SIGKILLed at many points and resumed ends bit-identical to an uninterrupted run (CPU)."""

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distilkit.models.student import build_student
from distilkit.train.distill import DistillConfig
from tiny import make_model, make_tokenizer, write_token_data

DRIVER = Path(__file__).with_name("kill_driver.py")


def run_driver(config: DistillConfig, point: str) -> int:
    payload = json.dumps(dataclasses.asdict(config))
    return subprocess.run([sys.executable, str(DRIVER), payload, point], capture_output=True, timeout=300).returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run. Dropout is on (0.1), so the RNG state must be restored exactly too."""
    root = tmp_path_factory.mktemp("resume")
    teacher = make_model(root / "teacher", "bert", mlm=True, layers=4, dropout=0.1)
    build_student(teacher, [0, 3]).save_pretrained(root / "student")
    make_tokenizer(root / "student")
    write_token_data(root / "data", n_sequences=48)
    config = DistillConfig(
        teacher=str(root / "teacher"), student=str(root / "student"), data=str(root / "data"), out=str(root / "ref"),
        batch_size=8, max_steps=10, save_every=2, keep=2, alpha_hidden=1.0, tensorboard=False, log_every=1,
    )  # fmt: skip
    assert run_driver(config, "none") == 0
    return root, config


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


KILL_POINTS = ["step:1", "step:3", "after-checkpoint:4", "checkpoint-write:6", "step:9", "final-export"]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_resume_is_bit_identical(reference, point):
    root, config = reference
    run = dataclasses.replace(config, out=str(root / f"killed-{point.replace(':', '-')}"))
    assert run_driver(run, point) == -signal.SIGKILL
    out = Path(run.out)
    assert not (out / "student").exists()  # nothing half-written under the final name
    assert run_driver(dataclasses.replace(run, resume=True), "none") == 0
    expected = load_file(Path(config.out) / "student" / "model.safetensors")
    resumed = load_file(out / "student" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected), "weights differ from the uninterrupted run"
    assert _losses(out) == _losses(Path(config.out))  # the log, trimmed and rewritten, matches too
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
