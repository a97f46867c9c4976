"""task-distill --unlabeled and the on-disk teacher-logit cache: reuse across runs (the teacher is not run again),
invalidation (another teacher, a corrupted or truncated store), a run killed mid-way, top-k against full logits,
the hard loss skipping unlabeled rows, the --unlabeled formats and the one-line errors of the command."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from distilkit import losses
from distilkit.cli import app
from distilkit.errors import ConfigError, DataError
from distilkit.io import read_json
from distilkit.tasks.heads import task_loss
from distilkit.tasks.readers.unlabeled import read_unlabeled
from distilkit.tasks.registry import task_spec
from distilkit.train import logit_cache
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.logit_cache import open_store, store_folder
from distilkit.train.task_distill import TaskDistillConfig, hard_loss, soft_loss, task_distill
from tasks.tiny_tasks import FAST, SUBJECTS, base_encoder, conll_dir, one_thread, sst2_dir, stsb_dir  # noqa: F401 (one_thread: autouse fixture)

CLASSIFICATION = task_spec("sst2")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Teachers fine-tuned on tiny SST-2 (two, with different weights) and CoNLL, a 1-layer student, and 40
    unlabeled SST-2-like sentences."""
    root = tmp_path_factory.mktemp("unlabeled")
    encoder = base_encoder(root / "encoder")
    data = {"sst2": sst2_dir(root), "conll2003": conll_dir(root)}
    for name, task, steps in (("sst2", "sst2", 2), ("sst2-other", "sst2", 3), ("conll2003", "conll2003", 2)):
        finetune(FinetuneConfig(model=encoder, task=task, data=data[task], out=str(root / name), max_steps=steps,
                                **FAST))  # fmt: skip
    words = ["good", "bad", "long", "old", "little"]
    lines = [f"{SUBJECTS[i % 8]} was {words[i % 5]} and {words[(i * 3) % 5]} ." for i in range(40)]
    (root / "unlabeled.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    student = base_encoder(root / "student", layers=1, seed=1)
    return {"root": root, "student": student, "data": data, "unlabeled": str(root / "unlabeled.txt")}


def distil(tiny, out: Path, task="sst2", teacher="sst2", **kwargs):
    settings = {"max_steps": 2, "cache_dir": str(out.parent / "cache"), **FAST, **kwargs}
    config = TaskDistillConfig(teacher=str(tiny["root"] / teacher), student=tiny["student"], task=task,
                               data=tiny["data"][task], out=str(out), **settings)  # fmt: skip
    result = task_distill(config)
    return result, read_json(out / "distilkit_task.json")["distillation"]


@pytest.fixture
def teacher_rows(monkeypatch) -> list[int]:
    """Counts the rows the teacher is run on to fill the cache (every cache fill goes through logit_cache.forward)."""
    rows: list[int] = []

    def counting(model, batch, hidden=False):
        rows.append(len(batch["input_ids"]))
        return forward(model, batch, hidden)

    forward = logit_cache.forward
    monkeypatch.setattr(logit_cache, "forward", counting)
    return rows


def test_unlabeled_text_is_labelled_once_and_reused_by_later_runs(tmp_path, tiny, teacher_rows):
    result, info = distil(tiny, tmp_path / "a", unlabeled=tiny["unlabeled"])
    assert set(result.metrics) == {"accuracy"} and result.train_features == 48  # the labelled set is what is scored
    assert info["unlabeled"]["inputs"] == 40 and info["unlabeled"]["computed"] == 40
    assert len(info["teacher_cache"]) == 2  # the labelled features and the unlabeled text are stored apart
    assert sum(teacher_rows) == info["teacher_logits_computed"] >= 40
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert {"kl", "hard"} <= set(log[-1]["terms"])
    # a second run on the same teacher and data: every logit comes from disk, the teacher never runs
    teacher_rows.clear()
    _, again = distil(tiny, tmp_path / "b", unlabeled=tiny["unlabeled"])
    assert teacher_rows == [] and again["teacher_logits_computed"] == 0 and again["unlabeled"]["computed"] == 0
    assert again["teacher_cache"] == info["teacher_cache"]
    # another labelled sample: a new labelled store, but the unlabeled text's logits are still reused
    _, resampled = distil(tiny, tmp_path / "c", unlabeled=tiny["unlabeled"], max_train_samples=40)
    assert resampled["unlabeled"]["computed"] == 0 and resampled["teacher_cache"][1] == info["teacher_cache"][1]
    assert resampled["teacher_cache"][0] != info["teacher_cache"][0]


def test_another_teacher_never_reuses_the_cache(tmp_path, tiny, teacher_rows):
    _, first = distil(tiny, tmp_path / "a", unlabeled=tiny["unlabeled"])
    teacher_rows.clear()
    _, other = distil(tiny, tmp_path / "b", teacher="sst2-other", unlabeled=tiny["unlabeled"])
    assert other["teacher_logits_reused"] == 0 and other["unlabeled"]["computed"] == 40
    assert sum(teacher_rows) == other["teacher_logits_computed"]
    assert not set(other["teacher_cache"]) & set(first["teacher_cache"])


def test_a_pair_regression_task_learns_from_unlabeled_pairs(tmp_path, tiny):
    data = stsb_dir(tmp_path)
    finetune(FinetuneConfig(model=tiny["student"], task="stsb", data=data, out=str(tmp_path / "t"), max_steps=1,
                            **FAST))  # fmt: skip
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{a} sat .\t{b} sat .\n" for a in SUBJECTS for b in SUBJECTS[:3]))
    config = TaskDistillConfig(teacher=str(tmp_path / "t"), student=tiny["student"], task="stsb", data=data,
                               out=str(tmp_path / "s"), max_steps=3, unlabeled=str(pairs),
                               cache_dir=str(tmp_path / "cache"), **FAST)  # fmt: skip
    result = task_distill(config)
    info = read_json(tmp_path / "s" / "distilkit_task.json")["distillation"]
    assert info["unlabeled"]["inputs"] == 24 and set(result.metrics) == {"pearson", "spearman"}
    terms = [json.loads(line)["terms"] for line in (tmp_path / "s" / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(list(term.values())).all() for term in terms)  # NaN scores never reach the loss


def identity(teacher: str = "teacher-a", top_k: int | None = None, n: int = 6, columns: int = 5) -> dict:
    return {"format": logit_cache.FORMAT, "teacher": teacher, "features": "f" * 64, "task": "mnli",
            "kind": "classification", "max_len": 32, "top_k": top_k, "n_features": n, "rows": n,
            "columns": columns}  # fmt: skip


def filled_store(cache_dir: Path, spec: dict, logits: np.ndarray):
    store = open_store(cache_dir, spec, np.arange(spec["n_features"] + 1))
    store.write([(i, logits[i : i + 1]) for i in range(len(logits))])
    store.close()
    return store


def test_a_store_made_for_another_teacher_is_discarded_even_under_its_name(tmp_path, caplog):
    logits = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    made = filled_store(tmp_path, identity("teacher-a"), logits)
    other = identity("teacher-b")
    assert store_folder(tmp_path, other) != made.folder
    shutil.move(made.folder, store_folder(tmp_path, other))  # teacher A's logits where teacher B's would be
    with caplog.at_level(logging.WARNING):
        store = open_store(tmp_path, other, np.arange(7))
    assert store.reused == 0 and "another teacher" in store.discarded and "discarding" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "flip", "header", "missing"])
def test_a_corrupted_or_truncated_store_is_recomputed_not_trusted(tmp_path, caplog, damage):
    logits = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    spec = identity()
    folder = filled_store(tmp_path, spec, logits).folder
    reopened = open_store(tmp_path, spec, np.arange(7))
    assert reopened.reused == 6 and reopened.discarded is None  # intact: reused as is
    np.testing.assert_array_equal(reopened.rows(4)[0], logits[4:5])
    values = folder / "values.npy"
    if damage == "truncate":
        values.write_bytes(values.read_bytes()[:-20])
    elif damage == "flip":  # same size, other numbers: only the checksum can tell
        raw = bytearray(values.read_bytes())
        raw[-8:] = np.array([3.0, 7.0], dtype=np.float32).tobytes()
        values.write_bytes(bytes(raw))
    elif damage == "header":
        (folder / "header.json").write_text("{not json")
    else:
        (folder / "known.npy").unlink()
    with caplog.at_level(logging.WARNING):
        store = open_store(tmp_path, spec, np.arange(7))
    assert store.reused == 0 and store.discarded and "computing it again" in caplog.text
    assert not store.known.any()


KILLED_WRITER = """
import json, os, sys
import numpy as np
from distilkit.train.logit_cache import open_store
spec = json.loads(sys.argv[2])
store = open_store(sys.argv[1], spec, np.arange(spec["n_features"] + 1))
store.write([(i, np.full((1, spec["columns"]), float(i + 1), dtype=np.float32)) for i in (0, 2, 3)])
os._exit(9)  # killed before close(): no checksums, the header still says "writing"
"""


def test_a_run_killed_mid_way_leaves_only_finished_rows_known(tmp_path):
    spec = identity()
    finished = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path), json.dumps(spec)], timeout=120)
    assert finished.returncode == 9
    assert read_json(store_folder(tmp_path, spec) / "header.json")["state"] == "writing"
    store = open_store(tmp_path, spec, np.arange(7))
    assert store.discarded is None and store.known.tolist() == [1, 0, 1, 1, 0, 0]
    np.testing.assert_array_equal(store.rows(2)[0], np.full((1, 5), 3.0))
    # garbage in a row marked known (e.g. a torn write on a dying disk) is not trusted either
    store.values[3] = np.nan
    store.values.flush()
    assert open_store(tmp_path, spec, np.arange(7)).discarded == "rows marked known hold non-finite values"


def test_top_k_store_keeps_the_k_largest_logits_of_the_full_ones(tmp_path):
    logits = np.random.default_rng(2).normal(size=(6, 5)).astype(np.float32)
    full = filled_store(tmp_path, identity(), logits)
    sparse = filled_store(tmp_path, identity(top_k=2), logits)
    assert full.folder != sparse.folder and sparse.indices is not None
    for feature in range(6):
        values, classes = sparse.rows(feature)
        order = np.argsort(-full.rows(feature)[0][0])[:2]
        np.testing.assert_array_equal(classes[0], order)
        np.testing.assert_array_equal(values[0], logits[feature, order])


def test_top_k_soft_loss_is_the_kl_of_the_renormalised_top_k():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 5), torch.randn(4, 5)
    top, classes = teacher.topk(2, dim=-1)
    got = soft_loss(CLASSIFICATION, student, top, {}, temperature=2.0, classes=classes)
    p_teacher = F.softmax(top / 2, dim=-1)
    p_student = F.softmax(student.gather(-1, classes) / 2, dim=-1)
    expected = (p_teacher * (p_teacher.log() - p_student.log())).sum() / 4 * 4  # mean over rows, × T²
    torch.testing.assert_close(got, expected)
    # every class kept, in any order: exactly the full KL
    shuffled = torch.stack([torch.randperm(5) for _ in range(4)])
    full = soft_loss(CLASSIFICATION, student, teacher.gather(-1, shuffled), {}, 2.0, classes=shuffled)
    torch.testing.assert_close(full, losses.soft_target_kl(student, teacher, 2.0))


def test_ner_distils_against_a_top_k_cache(tmp_path, tiny):
    result, info = distil(tiny, tmp_path / "n", task="conll2003", teacher="conll2003", cache_top_k=2)
    assert info["cache_top_k"] == 2 and set(result.metrics) == {"precision", "recall", "f1"}
    store = Path(info["teacher_cache_dir"]) / info["teacher_cache"][0]
    assert np.load(store / "indices.npy").shape[1] == 2 and read_json(store / "header.json")["state"] == "closed"
    _, full = distil(tiny, tmp_path / "s", cache_top_k=2)  # 2 classes: top-2 keeps them all, the store is full
    assert full["cache_top_k"] is None


def test_hard_loss_ignores_unlabeled_rows():
    logits = torch.randn(4, 2, requires_grad=True)
    labels = torch.tensor([-100, 1, 0, -100])
    loss = hard_loss(CLASSIFICATION, logits, {"labels": labels})
    expected = (F.cross_entropy(logits[1:2], labels[1:2]) + F.cross_entropy(logits[2:3], labels[2:3])) / 4
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad[[0, 3]].abs().sum() == 0 and logits.grad[[1, 2]].abs().sum() > 0
    labelled = torch.tensor([1, 0, 1, 1])  # an all-labelled batch: the usual mean cross-entropy
    torch.testing.assert_close(hard_loss(CLASSIFICATION, logits, {"labels": labelled}),
                               task_loss(CLASSIFICATION, logits, {"labels": labelled}))  # fmt: skip
    scores = hard_loss(task_spec("stsb"), torch.tensor([[5.0], [1.0]]), {"labels": torch.tensor([float("nan"), 2.0])})
    assert float(scores) == pytest.approx(1 / 2)
    none = hard_loss(CLASSIFICATION, logits, {"labels": torch.full((4,), -100)})
    assert none.item() == 0.0 and none.requires_grad  # a batch of unlabeled text only: no hard term


def test_unlabeled_formats(tmp_path):
    (tmp_path / "a.txt").write_text("the ship was good .\n\n  the sea was bad .  \n")
    assert [e.text for e in read_unlabeled(tmp_path / "a.txt", False)] == ["the ship was good .", "the sea was bad ."]
    (tmp_path / "b.jsonl").write_text('{"text": "one", "id": 1}\n\n{"text": "two"}\n')
    assert [e.text for e in read_unlabeled(tmp_path / "b.jsonl", False)] == ["one", "two"]
    (tmp_path / "c.csv").write_text('sentence,source\n"a, b",web\nc,web\n')
    assert [e.text for e in read_unlabeled(tmp_path / "c.csv", False)] == ["a, b", "c"]
    (tmp_path / "d.tsv").write_text("review\tstars\ngreat\t5\n")
    assert read_unlabeled(tmp_path / "d.tsv", False, "review")[0].text == "great"
    (tmp_path / "e.txt").write_text("the ship sailed .\tit sailed .\n")
    pair = read_unlabeled(tmp_path / "e.txt", True)[0]
    assert (pair.text, pair.text_pair, pair.label) == ("the ship sailed .", "it sailed .", None)
    (tmp_path / "f.jsonl").write_text('{"sentence1": "x", "sentence2": "y"}\n')
    assert read_unlabeled(tmp_path / "f.jsonl", True)[0].text_pair == "y"


@pytest.mark.parametrize(
    ("name", "content", "pair", "column", "message"),
    [
        ("none.txt", None, False, None, "does not exist"),
        ("empty.txt", "\n  \n", False, None, "has no text"),
        ("empty.jsonl", "", False, None, "is empty"),
        ("blank.csv", "text\n \n\n", False, None, "has a header but no rows"),
        ("blank.tsv", "text\tid\n \t1\n", False, None, "has no text"),
        ("cols.csv", "review,stars\ngreat,5\n", False, None, "has no column 'text' or 'sentence' or 'sentence1'"),
        ("cols.jsonl", '{"body": "x"}\n', False, "review", "has no column 'review'"),
        ("pair.jsonl", '{"text": "x"}\n', True, None, "plus 'text_pair' or 'sentence2'"),
        ("bad.jsonl", '{"text": "x"}\n[1, 2]\n', False, None, "line 2: expected a JSON object"),
        ("number.jsonl", '{"text": 3}\n', False, None, "line 1: the text is not a string"),
        ("pair.txt", "no tab here\n", True, None, "line 1: a pair task needs two tab-separated texts"),
        ("pair.csv", "a,b\nx,y\n", True, "a", "needs two names"),
    ],
)
def test_unlabeled_errors_are_one_line(tmp_path, name, content, pair, column, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message) as error:
        read_unlabeled(tmp_path / name, pair, column)
    assert "\n" not in str(error.value)


def test_config_refuses_what_unlabeled_cannot_do():
    base = {"teacher": "t", "student": "s", "data": "d", "out": "o", "unlabeled": "u.txt"}
    with pytest.raises(ConfigError, match="supports sequence classification and regression tasks, not conll2003"):
        TaskDistillConfig(task="conll2003", **base)
    with pytest.raises(ConfigError, match="--unlabeled needs --alpha-kl > 0"):
        TaskDistillConfig(task="sst2", alpha_kl=0, **base)
    with pytest.raises(ConfigError, match="--cache-top-k must be ≥ 2"):
        TaskDistillConfig(task="sst2", cache_top_k=1, **base)


def test_cli_unlabeled_run_and_one_line_errors(tmp_path, tiny):
    runner = CliRunner()
    base = ["task-distill", "--teacher", tiny["root"] / "sst2", "--student", tiny["student"], "--task", "sst2",
            "--data", tiny["data"]["sst2"], "--cache-dir", tmp_path / "cache", "--max-steps", "2",
            "--max-len", "32", "--batch-size", "8"]  # fmt: skip

    def invoke(*args):
        return runner.invoke(app, [str(arg) for arg in [*base, *args]])

    done = invoke("--out", tmp_path / "ok", "--unlabeled", tiny["unlabeled"])
    assert done.exit_code == 0, done.output
    output = " ".join(done.output.split())
    assert "40 unlabeled inputs" in output and "model saved to" in output
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "cols.jsonl").write_text('{"body": "x"}\n')
    cases = [
        (["--unlabeled", tmp_path / "none.txt"], "does not exist"),
        (["--unlabeled", tmp_path / "empty.txt"], "has no text"),
        (["--unlabeled", tmp_path / "cols.jsonl"], "has no column"),
        (["--unlabeled", tiny["unlabeled"], "--cache-top-k", "1"], "--cache-top-k must be ≥ 2"),
    ]
    for extra, message in cases:
        result = invoke("--out", tmp_path / "bad", *extra)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert message in lines[0]
    assert not (tmp_path / "bad").exists()
    token = runner.invoke(app, [str(arg) for arg in ["task-distill", "--teacher", tiny["root"] / "conll2003",
                                                     "--student", tiny["student"], "--task", "conll2003", "--data",
                                                     tiny["data"]["conll2003"], "--out", tmp_path / "bad",
                                                     "--unlabeled", tiny["unlabeled"]]])  # fmt: skip
    assert token.exit_code == 2 and "supports sequence classification" in token.output
