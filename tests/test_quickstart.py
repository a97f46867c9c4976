"""quickstart end to end on a tiny teacher: prepare → init-student → distill → compare → report card, and the
distilled student follows the teacher more closely than the undistilled one on the figures the quickstart reports."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

import distilkit.pipeline
from distilkit.models.sentence import SentenceSpec, write_sentence_files
from distilkit.pipeline import QuickstartConfig, quickstart
from tasks.tiny_tasks import sst2_dir, stsb_dir
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
    distill = distilkit.pipeline.distill
    monkeypatch.setattr(
        distilkit.pipeline,
        "distill",
        lambda config, callback=None: distill(dataclasses.replace(config, max_steps=STEPS), callback=callback),
    )
    events = []
    glue = tmp_path / "glue"  # the embedding suite's data: STS-B and SST-2 only (MRPC, QNLI are said to be missing)
    sst2_dir(glue, n_train=40, n_dev=20)
    stsb_dir(glue)
    summary = quickstart(
        QuickstartConfig(out=str(tmp_path / "qs"), teacher=str(tmp_path / "teacher"), corpus=str(corpus),
                         num_layers=1, time_budget=600, heldout=40, batch_size=8, lr=3e-3, probe_samples=32,
                         eval_data=str(glue)),
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
    suite = summary["suite"]
    if sentence_transformers:  # quality beyond the training text, each student against the teacher
        assert suite["tasks"] == ["sts", "classify-sst2"] and set(suite["tasks_skipped"]) == {"pair-mrpc", "pair-qnli"}
        for role in ("undistilled", "distilled"):
            retention = suite[role]["retention"]
            assert retention["sts"] == pytest.approx(
                100 * suite["scores"][role]["sts"] / suite["scores"]["teacher"]["sts"]
            )
            assert suite[role]["mean_retention"] == pytest.approx(np.mean(list(retention.values())))
    else:
        assert suite == {"skipped": "the teacher is not a sentence-embedding model"}
    saved = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert saved["after"] == summary["after"]
    assert "data:image/png;base64" in (tmp_path / "qs" / "report.html").read_text()


def test_without_evaluation_data_the_suite_is_said_to_be_skipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared/data/glue from here
    monkeypatch.delenv("DISTILKIT_SHARED_DATA", raising=False)
    config = QuickstartConfig(out=str(tmp_path / "qs"))
    assert distilkit.pipeline.suite_root(config) is None
    skipped = distilkit.pipeline.suite_comparison(None, {"teacher": "unused"}, 0, lambda event: None)
    assert "no evaluation data" in skipped["skipped"] and "--eval-data" in skipped["skipped"]
    (tmp_path / "mine").mkdir()
    assert distilkit.pipeline.suite_root(QuickstartConfig(eval_data=str(tmp_path / "mine"))) == tmp_path / "mine"
    with pytest.raises(distilkit.DistilkitError, match="--eval-data folder not found"):
        QuickstartConfig(eval_data=str(tmp_path / "absent"))
