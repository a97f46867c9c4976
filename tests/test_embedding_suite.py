"""evaluate --task embedding-suite: STS, pair classification, a logistic-regression probe and teacher-neighbour
agreement on tiny GLUE-layout files with tiny sentence models; the numbers are the libraries' on the same
embeddings; missing tasks are skipped and said so; bad input is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from distilkit.cli.app import app
from distilkit.embedding_suite import SuiteConfig, evaluate_suite
from distilkit.embeddings import load_sentence_model
from distilkit.errors import ConfigError
from tasks.tiny_tasks import SUBJECTS, base_encoder, one_thread, sst2_dir, stsb_dir  # noqa: F401


def pair_dir(root, folder: str, header: str, label_of) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    rows = [header]
    for index in range(24):
        first, second = SUBJECTS[index % 8], SUBJECTS[(index * 3) % 8]
        rows.append(label_of(index, f"{first} was good .", f"{second} was good .", first == second))
    (root / folder / "dev.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite") / "glue"
    sst2_dir(root, n_train=40, n_dev=20)
    stsb_dir(root)
    pair_dir(root, "MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
             lambda i, a, b, same: f"{int(same or i % 3 == 0)}\t{i}\t{i}\t{a}\t{b}")  # fmt: skip
    pair_dir(root, "QNLI", "index\tquestion\tsentence\tlabel",
             lambda i, a, b, same: f"{i}\t{a}\t{b}\t{'entailment' if same or i % 2 else 'not_entailment'}")  # fmt: skip
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite-models")
    return base_encoder(root / "teacher", layers=2), base_encoder(root / "student", layers=1, seed=3)


def test_every_task_scores_as_the_libraries_do(glue, models):
    teacher, student = models
    result = evaluate_suite(SuiteConfig(model=student, data=str(glue), teacher=teacher))
    assert result["tasks"] == ["sts", "pair-mrpc", "pair-qnli", "classify-sst2"] and result["skipped"] == {}
    model = load_sentence_model(student)
    from distilkit.tasks.readers.glue import read_glue
    from distilkit.tasks.registry import task_spec

    sts = read_glue(task_spec("stsb"), glue / "STS-B", "test_with_scores")
    a, b = model.encode([e.text for e in sts]), model.encode([e.text_pair for e in sts])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    expected = 100 * spearmanr(cosine, [e.label for e in sts]).statistic
    assert result["scores"]["model"]["sts"] == pytest.approx(expected)
    mrpc = read_glue(task_spec("mrpc"), glue / "MRPC", "dev")
    a, b = model.encode([e.text for e in mrpc]), model.encode([e.text_pair for e in mrpc])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    expected = 100 * average_precision_score([e.label == 1 for e in mrpc], cosine)
    assert result["scores"]["model"]["pair-mrpc"] == pytest.approx(expected, rel=1e-5)
    assert 0 <= result["scores"]["model"]["classify-sst2"] <= 100
    retention = result["retention"]
    assert retention["sts"] == pytest.approx(
        100 * result["scores"]["model"]["sts"] / result["scores"]["teacher"]["sts"]
    )
    assert result["mean_retention"] == pytest.approx(np.mean(list(retention.values())))


def test_the_probe_learns_a_separable_task(glue, models):
    result = evaluate_suite(SuiteConfig(model=models[0], data=str(glue)))
    assert result["scores"]["model"]["classify-sst2"] >= 90  # "good" vs "bad": a linear probe separates them
    assert "retention" not in result


def test_neighbours_on_your_text_and_missing_tasks_are_said(tmp_path, glue, models):
    only_sts = tmp_path / "glue"
    stsb_dir(only_sts)
    text = tmp_path / "mine.txt"
    text.write_text("\n".join(f"{s} sat by the sea ." for s in SUBJECTS) + "\n", encoding="utf-8")
    result = evaluate_suite(SuiteConfig(model=models[0], data=str(only_sts), teacher=models[0], text=str(text)))
    assert result["tasks"] == ["sts", "neighbours"] and result["scores"]["model"]["neighbours"] == 100.0
    assert set(result["skipped"]) == {"pair-mrpc", "pair-qnli", "classify-sst2"}


def test_bad_input_is_one_line(tmp_path, glue, models):
    with pytest.raises(ConfigError, match="give --teacher too"):
        SuiteConfig(model=models[1], data=str(glue), text=str(tmp_path / "x.txt"))
    with pytest.raises(ConfigError, match="no task of the embedding suite"):
        (tmp_path / "empty").mkdir()
        evaluate_suite(SuiteConfig(model=models[1], data=str(tmp_path / "empty")))
    out = tmp_path / "out"
    runner = CliRunner()
    ok = runner.invoke(app, ["evaluate", "--model", models[1], "--task", "embedding-suite", "--data", str(glue),
                             "--teacher", models[0], "--out", str(out)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "mean" in ok.output and json.loads((out / "evaluation.json").read_text())["mean_retention"] > 0
    bad = runner.invoke(app, ["evaluate", "--model", models[1], "--task", "embedding-suite", "--data", "nowhere"])
    assert bad.exit_code == 2 and "evaluation data folder not found" in bad.output and "Traceback" not in bad.output
