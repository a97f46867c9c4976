"""finetune and task-distill through the one loop (train/loop.py, train/task_recipe.py): a run stopped part-way
and resumed ends bit-identical to an uninterrupted one; accumulated micro-batches equal one large batch; the
one-line errors of --resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distilkit.errors import ConfigError
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.task_distill import TaskDistillConfig, task_distill
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread, sst2_dir  # noqa: F401 (one_thread: autouse fixture)
from tiny import make_model, torchrun

DRIVER = Path(__file__).with_name("task_kill_driver.py")


class Crash(Exception):
    """What the test raises from the progress callback to stop a run, as a kill would, after a step."""


def crash_after(step: int):
    def callback(event: dict) -> None:
        if event["event"] == "step" and event["step"] == step:
            raise Crash(step)

    return callback


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


def log(out: Path) -> list[dict]:
    """train_log.jsonl without the wall-clock times (they differ from run to run)."""
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{key: value for key, value in record.items() if key != "elapsed"} for record in records]


def assert_same_run(expected: Path, resumed: Path) -> None:
    a, b = weights(expected), weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a), "weights differ from the uninterrupted run"
    assert log(resumed) == log(expected)  # the loss log (epoch scores included) carries across the crash
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((expected / "metrics.json").read_text())
    assert not (resumed / "checkpoints").exists()  # the final save of the model folder replaced them


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Encoders with dropout on (resume must restore the RNG), SST-2 and CoNLL files, and fine-tuned teachers."""
    root = tmp_path_factory.mktemp("task_loop")
    make_model(root / "encoder", "bert", mlm=False, layers=2, hidden=32, dropout=0.1)
    make_model(root / "student", "bert", mlm=False, layers=1, hidden=32, dropout=0.1, seed=1)
    data = {"sst2": sst2_dir(root), "conll2003": conll_dir(root, n=20)}
    for task in data:
        finetune(FinetuneConfig(model=str(root / "encoder"), task=task, data=data[task], out=str(root / task),
                                max_steps=2, **FAST))  # fmt: skip
    return {"root": root, "encoder": str(root / "encoder"), "student": str(root / "student"), "data": data}


def finetune_config(tiny, out: Path, task: str = "sst2", **kwargs) -> FinetuneConfig:
    settings = {"model": tiny["encoder"], "data": tiny["data"][task], "epochs": 2, "save_every": 3, "keep": 2,
                "log_every": 1, "eval_every_epoch": True, **FAST, **kwargs}  # fmt: skip
    return FinetuneConfig(task=task, out=str(out), **settings)


def distill_config(tiny, out: Path, task: str = "sst2", **kwargs) -> TaskDistillConfig:
    settings = {"student": tiny["student"], "data": tiny["data"][task], "epochs": 2, "save_every": 2, "keep": 2,
                "log_every": 1, "cache_dir": str(out.parent / f"cache-{out.name}"), **FAST, **kwargs}  # fmt: skip
    return TaskDistillConfig(teacher=str(tiny["root"] / task), task=task, out=str(out), **settings)


@pytest.mark.parametrize("task", ["sst2", "conll2003"])
def test_finetune_stopped_and_resumed_is_bit_identical(tmp_path, tiny, task):
    reference = finetune(finetune_config(tiny, tmp_path / "ref", task))
    assert reference.steps == (12 if task == "sst2" else 6)
    crash_at = 7 if task == "sst2" else 5  # past a checkpoint (every 3 steps) and an epoch's score
    with pytest.raises(Crash):
        finetune(finetune_config(tiny, tmp_path / "run", task), callback=crash_after(crash_at))
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["checkpoints"]  # no model under the final name
    events = []
    resumed = finetune(finetune_config(tiny, tmp_path / "run", task, resume=True), callback=events.append)
    assert next(e for e in events if e["event"] == "resumed")["step"] == (6 if task == "sst2" else 3)
    assert resumed.steps == reference.steps and resumed.metrics == reference.metrics
    assert_same_run(tmp_path / "ref", tmp_path / "run")


@pytest.mark.parametrize(("task", "extra"), [("sst2", {}), ("conll2003", {"alpha_hidden": 1.0})])
def test_task_distill_stopped_and_resumed_is_bit_identical(tmp_path, tiny, task, extra):
    """The teacher-logit cache is sealed when the run stops; the resumed run reads it, the reference computes."""
    reference = task_distill(distill_config(tiny, tmp_path / "ref", task, **extra))
    with pytest.raises(Crash):
        task_distill(distill_config(tiny, tmp_path / "run", task, **extra), callback=crash_after(reference.steps - 1))
    resumed = task_distill(distill_config(tiny, tmp_path / "run", task, resume=True, **extra))
    assert resumed.metrics == reference.metrics
    assert_same_run(tmp_path / "ref", tmp_path / "run")


def ragged_conll_dir(root: Path, n: int = 20) -> str:
    """CoNLL sentences of 1 to 7 words: micro-batches of equal rows hold unequal numbers of labelled tokens."""
    folder = root / "ragged"
    folder.mkdir(parents=True, exist_ok=True)
    words = [("ahab", "I-PER"), ("sat", "O"), ("in", "O"), ("nantucket", "I-LOC"), ("with", "O"), ("jo", "I-PER")]
    lines = []
    for index in range(n):
        sentence = [words[(index + k) % len(words)] for k in range(index % 7)] + [(".", "O")]
        lines += [f"{word} NNP I-NP {tag}" for word, tag in sentence] + [""]
    (folder / "train.txt").write_text("\n".join(lines), encoding="utf-8")
    return str(folder)


@pytest.mark.parametrize("task", ["sst2", "conll2003"])
def test_accumulated_micro_batches_equal_one_large_batch(tmp_path, tiny, task):
    """4×2 accumulated == one batch of 8: every step's loss and gradient norm (before clipping) and the final
    weights. The CoNLL sentences differ in labelled tokens, so each micro-batch weighs its share of the tokens."""
    encoder = base_encoder(tmp_path / "encoder")  # no dropout: the micro-batches draw other dropout masks
    data = ragged_conll_dir(tmp_path) if task == "conll2003" else tiny["data"][task]
    common = {"model": encoder, "data": data, "epochs": 2, "eval_split": "none", "save_every": 500}
    big = finetune(finetune_config(tiny, tmp_path / "big", task, **common))
    small = finetune(finetune_config(tiny, tmp_path / "small", task, **{**common, "batch_size": 4, "grad_accum": 2}))
    assert big.steps == small.steps == (12 if task == "sst2" else 6)
    for a, b in zip(log(tmp_path / "big"), log(tmp_path / "small"), strict=True):
        assert (a["step"], a["lr"]) == (b["step"], b["lr"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    a, b = weights(tmp_path / "big"), weights(tmp_path / "small")
    assert all(torch.allclose(a[name], b[name], atol=1e-5) for name in a)


def test_task_distill_accumulates_every_term(tmp_path, tiny):
    settings = {"student": base_encoder(tmp_path / "student", layers=1, seed=1), "eval_split": "none"}
    big = tmp_path / "big"
    task_distill(distill_config(tiny, big, **settings))
    task_distill(distill_config(tiny, tmp_path / "small", batch_size=4, grad_accum=2, **settings))
    for a, b in zip(log(big), log(tmp_path / "small"), strict=True):
        assert set(a["terms"]) == {"kl", "hard"}
        assert b["terms"] == pytest.approx(a["terms"], rel=1e-5, abs=1e-9)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


def test_resume_errors_are_one_line(tmp_path, tiny):
    with pytest.raises(ConfigError, match=r"^--resume and --overwrite contradict each other$"):
        finetune_config(tiny, tmp_path / "m", resume=True, overwrite=True)
    with pytest.raises(ConfigError, match="--grad-accum must be ≥ 1") as error:
        finetune_config(tiny, tmp_path / "m", grad_accum=0, save_every=0, keep=0)
    assert "--save-every must be ≥ 1" in str(error.value) and "--keep must be ≥ 1" in str(error.value)
    with pytest.raises(
        ConfigError, match=r"^no complete checkpoint in .*checkpoints to resume — run without --resume$"
    ):
        finetune(finetune_config(tiny, tmp_path / "m", resume=True))
    with pytest.raises(Crash):
        finetune(finetune_config(tiny, tmp_path / "m"), callback=crash_after(4))
    with pytest.raises(ConfigError, match="not empty — choose another --out or pass --resume to continue"):
        finetune(finetune_config(tiny, tmp_path / "m"))
    with pytest.raises(ConfigError, match=r"cannot resume exactly .* --batch-size × --grad-accum") as error:
        finetune(finetune_config(tiny, tmp_path / "m", resume=True, batch_size=4))
    assert "\n" not in str(error.value)
    # --overwrite starts again: the old run's checkpoints do not outlive it, nor get mixed with the new ones
    result = finetune(finetune_config(tiny, tmp_path / "m", overwrite=True, max_steps=2, save_every=1))
    assert result.steps == 2 and not (tmp_path / "m" / "checkpoints").exists()
    with pytest.raises(ConfigError, match="no complete checkpoint"):  # a finished run has none left to resume
        finetune(finetune_config(tiny, tmp_path / "m", resume=True))


def run_driver(command: str, config, kill_after: int = 0) -> int:
    payload = json.dumps(dataclasses.asdict(config))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run([sys.executable, str(DRIVER), command, payload, str(kill_after)], capture_output=True,
                              timeout=300, env=environment)  # fmt: skip
    return finished.returncode


@pytest.mark.slow
def test_task_distill_sigkilled_then_resumed_is_bit_identical(tmp_path, tiny):
    """SIGKILL leaves the teacher-logit store unsealed ("writing"): the resumed run reads its known rows."""
    assert run_driver("task-distill", distill_config(tiny, tmp_path / "ref")) == 0
    killed = distill_config(tiny, tmp_path / "run")
    assert run_driver("task-distill", killed, kill_after=5) == -signal.SIGKILL
    assert run_driver("task-distill", dataclasses.replace(killed, resume=True)) == 0
    assert_same_run(tmp_path / "ref", tmp_path / "run")


@pytest.mark.slow
def test_two_process_finetune_matches_single_process_with_same_batch(tmp_path, tiny):
    """torchrun with 2 CPU processes (gloo), batch 8 each == one process accumulating 2×8: the losses, the gradient
    norms (an error in the world-size rescale changes them), the checkpoints' cadence and the saved model."""
    encoder = base_encoder(tmp_path / "encoder")  # no dropout: the processes draw other dropout masks

    def args(out: str, grad_accum: int) -> list[str]:
        return [
            "-m", "distilkit.cli", "finetune", "--model", encoder, "--task", "sst2", "--data", tiny["data"]["sst2"],
            "--out", str(tmp_path / out), "--batch-size", "8", "--grad-accum", str(grad_accum), "--epochs", "2",
            "--save-every", "2", "--log-every", "1", "--max-len", "32", "--seed", "0", "--device", "cpu",
        ]  # fmt: skip

    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, *args("single", 2)], capture_output=True, text=True, timeout=300,
                            env=environment)  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([*torchrun(2), *args("ddp", 1)], capture_output=True, text=True, timeout=300, env=environment)
    assert ddp.returncode == 0, ddp.stdout[-1500:] + ddp.stderr[-1500:]
    expected, got = log(tmp_path / "single"), log(tmp_path / "ddp")
    assert [r["step"] for r in got] == [r["step"] for r in expected] == list(range(1, 7))  # 48 rows, 16 a step
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in expected], rel=1e-5)
    assert all(r["grad_norm"] > 0 for r in expected)
    assert [r["grad_norm"] for r in got] == pytest.approx([r["grad_norm"] for r in expected], rel=1e-4)
    a, b = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    assert all(torch.allclose(a[name], b[name], atol=1e-5) for name in a)
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics == pytest.approx(json.loads((tmp_path / "single" / "metrics.json").read_text()))
    assert not (tmp_path / "ddp" / "checkpoints").exists()
