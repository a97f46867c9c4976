"""task-distill --augment: seeded perturbed copies of the training inputs, labelled by the teacher only — the
perturbations themselves, the copies joining the training set (GLUE and streamed own files), their cached
teacher logits reused by a second run, and the one-line refusals."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.errors import ConfigError
from distilkit.io import read_json
from distilkit.tasks.readers.glue import Example
from distilkit.train.augment import Perturbation, augment, perturb, word_pool
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.task_distill import TaskDistillConfig, task_distill
from tasks.tiny_tasks import FAST, SUBJECTS, base_encoder, one_thread, sst2_dir, stsb_dir  # noqa: F401 (one_thread: autouse fixture)

PAIRS = [Example(f"{a} sat on the old chair .", f"{b} was by the sea .", 1.0) for a in SUBJECTS for b in SUBJECTS[:2]]


def test_perturb_drops_replaces_and_swaps_words_from_the_pool():
    rng, text = random.Random(0), "one two three four five six seven eight nine ten"
    assert perturb(text, ["x"], rng, Perturbation(drop=0, replace=0, swap=0)) == text
    assert perturb(text, ["x"], rng, Perturbation(drop=1, replace=0, swap=0)) == text  # never empty
    assert perturb(text, ["x"], rng, Perturbation(drop=0, replace=1, swap=0)) == " ".join(["x"] * 10)
    swapped = perturb(text, ["x"], rng, Perturbation(drop=0, replace=0, swap=1)).split()
    assert sorted(swapped) == sorted(text.split()) and swapped != text.split()
    assert sum(a != b for a, b in zip(swapped, text.split(), strict=True)) == 2  # two neighbours traded places
    copies = [perturb(text, ["x"], rng).split() for _ in range(200)]
    kept = sum(len(words) for words in copies) / (10 * 200)
    assert 0.85 < kept < 0.95  # about one word in ten dropped


def test_word_pool_keeps_repeats_and_stops_at_its_limit():
    examples = [Example("a b a", "c", 0), Example("d e", None, 1)]
    assert word_pool(examples) == ["a", "b", "a", "c", "d", "e"]
    assert word_pool(examples, limit=4) == ["a", "b", "a", "c"]


def test_augment_is_seeded_unlabeled_and_spans_the_pair_space():
    copies = list(augment(PAIRS, 3, seed=7))
    assert len(copies) == 3 * len(PAIRS) and all(copy.label is None for copy in copies)
    assert copies == list(augment(PAIRS, 3, seed=7)) and copies != list(augment(PAIRS, 3, seed=8))
    assert all(copy.text and copy.text_pair for copy in copies)
    kept_first = [copy for copy in copies if copy.text in {p.text for p in PAIRS}]
    mismatched = [copy for copy in kept_first if copy.text_pair in {p.text_pair for p in PAIRS}]
    near_copies = [copy for copy in kept_first if copy.text_pair not in {p.text_pair for p in PAIRS}]
    assert mismatched and near_copies and len(kept_first) < len(copies)
    singles = list(augment([Example("a b c d", None, 0)], 2))
    assert len(singles) == 2 and all(single.text_pair is None for single in singles)
    assert list(augment(PAIRS, 0)) == [] and list(augment([], 2)) == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment")
    encoder = base_encoder(root / "encoder")
    data = sst2_dir(root)
    finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=str(root / "teacher"), max_steps=2, **FAST))
    return {"root": root, "data": data, "teacher": str(root / "teacher"),
            "student": base_encoder(root / "student", layers=1, seed=1)}  # fmt: skip


def run(tiny, out, **kwargs):
    settings = {"max_steps": 3, "cache_dir": str(out.parent / "cache"), **FAST, **kwargs}
    config = TaskDistillConfig(teacher=tiny["teacher"], student=tiny["student"], task=settings.pop("task", "sst2"),
                               out=str(out), **settings)  # fmt: skip
    result = task_distill(config)
    return result, read_json(out / "distilkit_task.json")["distillation"]


def test_augmented_copies_join_training_and_their_logits_are_reused(tmp_path, tiny):
    result, info = run(tiny, tmp_path / "a", data=tiny["data"], augment=2)
    assert result.train_features == 48 and info["unlabeled"]["inputs"] == 96 and info["unlabeled"]["augment"] == 2
    assert info["unlabeled"]["computed"] == 96 and len(info["teacher_cache"]) == 2
    _, again = run(tiny, tmp_path / "b", data=tiny["data"], augment=2)  # same seed: the same copies, cached
    assert again["unlabeled"]["computed"] == 0 and again["teacher_cache"] == info["teacher_cache"]
    _, hidden = run(tiny, tmp_path / "c", data=tiny["data"], augment=1, alpha_hidden=1.0,
                    cache_dir=str(tmp_path / "other-cache"))  # fmt: skip
    assert hidden["unlabeled"]["inputs"] == 48 and hidden["hidden_pairs"]  # filled by the live teacher pass


def test_a_streamed_own_training_file_is_augmented_too(tmp_path, tiny):
    rows = ["text,label"] + [f"{SUBJECTS[i % 8]} was {'good' if i % 2 else 'bad'} .,{'pos' if i % 2 else 'neg'}"
                             for i in range(20)]  # fmt: skip
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:9]) + "\n")
    finetune(FinetuneConfig(model=tiny["student"], task="classification", train=str(tmp_path / "train.csv"),
                            dev=str(tmp_path / "dev.csv"), out=str(tmp_path / "t"), max_steps=1, **FAST))  # fmt: skip
    config = TaskDistillConfig(teacher=str(tmp_path / "t"), student=tiny["student"], task="classification",
                               train=str(tmp_path / "train.csv"), dev=str(tmp_path / "dev.csv"),
                               out=str(tmp_path / "s"), max_steps=2, augment=3, max_train_samples=10,
                               cache_dir=str(tmp_path / "cache"), **FAST)  # fmt: skip
    task_distill(config)
    info = read_json(tmp_path / "s" / "distilkit_task.json")
    assert info["train_examples"] == 10 and info["distillation"]["unlabeled"]["inputs"] == 30  # the sample's copies


def test_a_regression_pair_task_distils_on_augmented_pairs(tmp_path, tiny):
    data = stsb_dir(tmp_path)
    finetune(FinetuneConfig(model=tiny["student"], task="stsb", data=data, out=str(tmp_path / "t"), max_steps=1,
                            **FAST))  # fmt: skip
    config = TaskDistillConfig(teacher=str(tmp_path / "t"), student=tiny["student"], task="stsb", data=data,
                               out=str(tmp_path / "s"), max_steps=2, augment=2, cache_dir=str(tmp_path / "cache"),
                               **FAST)  # fmt: skip
    result = task_distill(config)
    assert set(result.metrics) == {"pearson", "spearman"}
    assert read_json(tmp_path / "s" / "distilkit_task.json")["distillation"]["unlabeled"]["inputs"] == 48


def test_augment_refusals_are_one_line(tmp_path, tiny):
    base = {"teacher": "t", "student": "s", "data": "d", "out": "o"}
    with pytest.raises(ConfigError, match="--augment supports sequence classification and regression tasks"):
        TaskDistillConfig(task="squad", augment=2, **base)
    with pytest.raises(ConfigError, match="--augment needs --alpha-kl > 0"):
        TaskDistillConfig(task="sst2", augment=2, alpha_kl=0, **base)
    with pytest.raises(ConfigError, match="--augment must be ≥ 0"):
        TaskDistillConfig(task="sst2", augment=-1, **base)
    result = CliRunner().invoke(app, ["task-distill", "--teacher", tiny["teacher"], "--student", tiny["student"],
                                      "--task", "conll2003", "--data", tiny["data"], "--out", str(tmp_path / "x"),
                                      "--augment", "2"])  # fmt: skip
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "--augment supports sequence" in lines[0]
    done = CliRunner().invoke(app, ["task-distill", "--teacher", tiny["teacher"], "--student", tiny["student"],
                                    "--task", "sst2", "--data", tiny["data"], "--out", str(tmp_path / "ok"),
                                    "--augment", "1", "--max-steps", "1", "--max-len", "32", "--batch-size", "8",
                                    "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert done.exit_code == 0 and "48 augmented inputs" in " ".join(done.output.split()), done.output
