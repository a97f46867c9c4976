"""quickstart end to end on a tiny teacher: prepare → init-student → distill → compare → report card, and the
distilled student follows the teacher more closely than the undistilled one on the figures the quickstart reports."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

import distilkit.quickstart
from distilkit.models.sentence import SentenceSpec, write_sentence_files
from distilkit.quickstart import QuickstartConfig, quickstart
from tiny import WORDS, make_tokenizer, tiny_config

STEPS = 60  # a fixed length, so that the figures do not depend on how busy the machine is


def distinct_teacher(directory: Path, sentence_transformers: bool) -> None:
    """A tiny 3-layer BERT whose sentence embeddings differ from text to text. With the default initializer range
    (0.02) every random text gets nearly the same embedding, and any student scores cosine ≈ 1 before training."""
    torch.manual_seed(0)
    config = tiny_config("bert", layers=3)
    config.initializer_range = 0.1
    AutoModel.from_config(config).save_pretrained(directory)
    make_tokenizer(directory)
    if sentence_transformers:
        write_sentence_files(directory, SentenceSpec(), config.hidden_size, config.max_position_embeddings)


@pytest.mark.parametrize("sentence_transformers", [True, False], ids=["embedding-objective", "bare-encoder"])
def test_quickstart_runs_the_whole_pipeline_and_distillation_helps(tmp_path, monkeypatch, sentence_transformers):
    distinct_teacher(tmp_path / "teacher", sentence_transformers)
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS, size=12)) for _ in range(160)) + "\n")
    distill = distilkit.quickstart.distill
    monkeypatch.setattr(
        distilkit.quickstart,
        "distill",
        lambda config, callback=None: distill(dataclasses.replace(config, max_steps=STEPS), callback=callback),
    )
    events = []
    summary = quickstart(
        QuickstartConfig(out=str(tmp_path / "qs"), teacher=str(tmp_path / "teacher"), corpus=str(corpus),
                         num_layers=1, time_budget=600, heldout=40, batch_size=8, lr=3e-3, probe_samples=32),
        callback=events.append,
    )  # fmt: skip
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages[0] == "prepare" and "distill" in stages and stages.count("compare") == 2
    before, after = summary["before"], summary["after"]
    for side in (before, after):
        assert 0 <= side["nn_agreement@1"] <= 1 and -1 <= side["cosine"] <= 1.0001
        assert side["student_params"] < side["teacher_params"]
    assert summary["distill"]["steps"] == STEPS
    assert summary["distill"]["terms"] == (["emb_mse", "emb_cos"] if sentence_transformers else ["cos", "hidden"])
    # Distillation moves the student towards the teacher: the cosine gap to the teacher's embeddings shrinks (seed 0:
    # 0.074 → 0.003 with the embedding objective, 0.164 → 0.075 on a bare encoder) and the neighbours are no worse
    # (one text of 40 either way), with the embedding objective clearly better (nn@1 0.43 → 0.58).
    assert 1 - after["cosine"] < 0.6 * (1 - before["cosine"])
    one_text = 1 / before["n"]
    assert after["nn_recall@10"] >= before["nn_recall@10"] - one_text
    assert after["nn_agreement@1"] >= before["nn_agreement@1"] + (0.1 if sentence_transformers else -one_text)
    saved = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert saved["after"] == summary["after"]
    assert "data:image/png;base64" in (tmp_path / "qs" / "report.html").read_text()
