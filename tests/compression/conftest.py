"""A tiny fine-tuned SST-2 teacher (4 layers, hidden 32, 2 heads) and its tiny data, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.tiny_tasks import FAST, base_encoder, sst2_dir


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from distilkit import FinetuneConfig, finetune

    root = tmp_path_factory.mktemp("compress")
    data = sst2_dir(root, n_train=96, n_dev=24)
    encoder = base_encoder(root / "encoder", layers=4)
    finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=str(root / "teacher"), max_steps=30, **FAST))
    return {"teacher": str(root / "teacher"), "data": data, "root": str(root)}


@pytest.fixture
def flags(tiny_teacher: dict[str, str]):
    """compress flags for the tiny teacher: PyTorch timing at 16 tokens, one thread, a budget of seconds."""

    def make(out: Path, **overrides) -> dict:
        return {
            "teacher": tiny_teacher["teacher"], "task": "sst2", "data": tiny_teacher["data"], "out": str(out),
            "backend": "torch-fp32", "seq_len": 16, "threads": 1, "timing_repeats": 5, "time_budget": 20.0,
            "max_len": 32, "train_batch_size": 8, "selection_fraction": 0.25, "seed": 0, **overrides,
        }  # fmt: skip

    return make
