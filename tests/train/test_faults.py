"""Faults during distillation: damaged checkpoints, non-finite losses, a full disk — no lost or NaN weights."""

import dataclasses
import errno
import json
import math

import pytest
import torch
from safetensors.torch import load_file

import distilkit.train.checkpoint as checkpoint_module
import distilkit.train.distill as distill_module
from distilkit.errors import CheckpointError, TrainingError
from distilkit.io import verify_manifest
from distilkit.models.student import build_student
from distilkit.train.checkpoint import Checkpointer
from distilkit.train.distill import DistillConfig, distill
from tiny import make_model, make_tokenizer, write_token_data


@pytest.fixture
def config(tmp_path):
    teacher = make_model(tmp_path / "teacher", "bert", mlm=True, layers=4, dropout=0.1)
    build_student(teacher, [0, 3]).save_pretrained(tmp_path / "student")
    make_tokenizer(tmp_path / "student")
    write_token_data(tmp_path / "data", n_sequences=48)
    return DistillConfig(
        teacher=str(tmp_path / "teacher"), student=str(tmp_path / "student"), data=str(tmp_path / "data"),
        out=str(tmp_path / "run"), batch_size=8, max_steps=8, save_every=2, keep=3, tensorboard=False,
    )  # fmt: skip


def _weights(path):
    return load_file(path / "model.safetensors")


def test_keep_rotates_old_checkpoints(config, tmp_path):
    distill(config)
    names = [p.name for p in Checkpointer(tmp_path / "run" / "checkpoints").step_dirs()]
    assert names == ["step-00000008", "step-00000006", "step-00000004"]
    assert all(verify_manifest(tmp_path / "run" / "checkpoints" / n) is None for n in names)


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop-manifest"])
def test_damaged_newest_checkpoint_falls_back_to_previous_good_one(config, tmp_path, damage):
    reference = distill(dataclasses.replace(config, out=str(tmp_path / "reference")))
    distill(config)
    newest = tmp_path / "run" / "checkpoints" / "step-00000008"
    target = newest / "model.safetensors"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-10] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        (newest / "manifest.json").unlink()
    assert verify_manifest(newest) is not None
    checkpointer = Checkpointer(tmp_path / "run" / "checkpoints")
    assert checkpointer.latest_good().name == "step-00000006"
    with pytest.raises(CheckpointError, match="damaged"):
        checkpointer.load(newest, None, None, None, None)
    # Resuming uses step 6 and recomputes steps 7-8 exactly.
    distill(dataclasses.replace(config, resume=True))
    expected, resumed = _weights(reference.student_dir), _weights(tmp_path / "run" / "student")
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)


def _inject_nan(monkeypatch, bad_steps):
    """Make the loss terms NaN at the given (1-based) steps."""
    original = distill_module.compute_terms
    calls = {"step": 0}

    def compute_terms(*args, **kwargs):
        calls["step"] += 1
        terms = original(*args, **kwargs)
        if calls["step"] in bad_steps:
            terms = {name: value * float("nan") for name, value in terms.items()}
        return terms

    monkeypatch.setattr(distill_module, "compute_terms", compute_terms)


def test_a_nan_step_is_skipped_counted_and_logged(config, tmp_path, monkeypatch):
    _inject_nan(monkeypatch, bad_steps={3})
    result = distill(config)
    assert result.skipped_steps == 1 and result.steps == 8
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["skipped"]] == [3]
    weights = _weights(result.student_dir)
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_repeated_nans_stop_with_a_clear_error_and_finite_last_good_weights(config, tmp_path, monkeypatch):
    _inject_nan(monkeypatch, bad_steps=set(range(4, 100)))
    with pytest.raises(TrainingError, match="3 steps in a row had a non-finite"):
        distill(dataclasses.replace(config, max_bad_steps=3, save_every=100))
    checkpointer = Checkpointer(tmp_path / "run" / "checkpoints")
    latest = checkpointer.latest_good()
    assert latest is not None and latest.name == "step-00000006"
    weights = _weights(latest)
    assert all(torch.isfinite(w).all() for w in weights.values())
    # The skipped steps did not move the weights: equal to a clean run stopped after step 3.
    monkeypatch.undo()
    clean = distill(dataclasses.replace(config, out=str(tmp_path / "clean"), max_steps=8, save_every=3))
    after_three = _weights(clean.out / "checkpoints" / "step-00000003")
    assert all(torch.equal(weights[k], after_three[k]) for k in weights)
    assert not (tmp_path / "run" / "student").exists()


def test_full_disk_during_a_checkpoint_keeps_the_previous_one_and_stops_cleanly(config, tmp_path, monkeypatch):
    original_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (step 4)
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(CheckpointError, match="No space left on device"):
        distill(config)
    root = tmp_path / "run" / "checkpoints"
    assert [p.name for p in Checkpointer(root).step_dirs()] == ["step-00000002"]
    assert verify_manifest(root / "step-00000002") is None
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left behind
    assert not (tmp_path / "run" / "student").exists()
    weights = _weights(root / "step-00000002")
    assert all(math.isfinite(float(w.abs().sum())) for w in weights.values())
