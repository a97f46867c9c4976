"""task-distill on tiny files: the teacher-logit cache (reused, invalidated, aligned with a live teacher),
the soft terms of each head, hidden-state matching, and the compatibility errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification
from typer.testing import CliRunner

from distilkit import losses
from distilkit.cli import app
from distilkit.errors import ConfigError, ModelError
from distilkit.io import read_json, read_jsonl
from distilkit.models.student import PROJECTION_FILE
from distilkit.models.teacher import load_tokenizer
from distilkit.runtime import setup_runtime
from distilkit.tasks.data import collate, encode
from distilkit.tasks.features import IGNORE_INDEX
from distilkit.tasks.heads import forward, head_logits, load_head_model
from distilkit.tasks.predict import predict
from distilkit.tasks.readers.splits import read_examples
from distilkit.tasks.registry import task_spec
from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.logit_cache import open_teacher_cache
from distilkit.train.schedule import parse_schedule
from distilkit.train.task_distill import TaskDistillConfig, soft_loss, task_distill
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread, squad_dir, sst2_dir, stsb_dir  # noqa: F401 (one_thread: autouse fixture)
from tiny import make_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer teacher fine-tuned on tiny SST-2 and CoNLL, and a 1-layer student encoder with the same vocab."""
    root = tmp_path_factory.mktemp("kd")
    encoder = base_encoder(root / "encoder")
    data = {"sst2": sst2_dir(root), "conll2003": conll_dir(root)}
    for task in data:
        finetune(FinetuneConfig(model=encoder, task=task, data=data[task], out=str(root / task), max_steps=2, **FAST))
    return {"root": root, "student": base_encoder(root / "student", layers=1, seed=1), "data": data}


def distil(tiny, out, task="sst2", teacher=None, **kwargs):
    """A 2-step task-distill run; its teacher-logit cache is `cache` next to `out` unless cache_dir says otherwise."""
    settings = {"max_steps": 2, "cache_dir": str(Path(out).parent / "cache"), **FAST, **kwargs}
    config = TaskDistillConfig(teacher=teacher or str(tiny["root"] / task), student=tiny["student"], task=task,
                               data=tiny["data"][task], out=str(out), **settings)  # fmt: skip
    return task_distill(config)


def cache_info(out) -> dict:
    return read_json(out / "distilkit_task.json")["distillation"]


def test_teacher_logits_are_cached_reused_and_invalidated(tmp_path, tiny):
    result = distil(tiny, tmp_path / "s")
    info = cache_info(tmp_path / "s")
    # 2 steps of 8: only the 16 features trained on were run through the teacher
    assert (info["teacher_logits_computed"], info["teacher_logits_reused"]) == (16, 0)
    store = Path(info["teacher_cache_dir"]) / info["teacher_cache"][0]
    assert (store / "values.npy").is_file() and set(result.metrics) == {"accuracy"}
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "s")
    # the same teacher and data again: the cached logits are read, not recomputed
    distil(tiny, tmp_path / "s", overwrite=True)
    again = cache_info(tmp_path / "s")
    assert (again["teacher_logits_computed"], again["teacher_logits_reused"]) == (0, 16)
    assert again["teacher_cache"] == info["teacher_cache"]
    # more steps: the features seen before are reused, the new ones computed
    distil(tiny, tmp_path / "s", overwrite=True, max_steps=6)
    more = cache_info(tmp_path / "s")
    assert (more["teacher_logits_computed"], more["teacher_logits_reused"]) == (32, 16)
    # a different teacher (other weights) must not reuse them
    other = tiny["root"] / "sst2-other"
    finetune(FinetuneConfig(model=tiny["student"], task="sst2", data=tiny["data"]["sst2"], out=str(other),
                            max_steps=1, **FAST))  # fmt: skip
    distil(tiny, tmp_path / "s", teacher=str(other), overwrite=True)
    changed = cache_info(tmp_path / "s")
    assert changed["teacher_logits_reused"] == 0 and changed["teacher_cache"] != info["teacher_cache"]


def test_cache_dir_holds_the_teacher_logits_of_the_features_seen(tmp_path, tiny):
    distil(tiny, tmp_path / "s", cache_dir=str(tmp_path / "cache"))
    cached = list((tmp_path / "cache").glob("teacher_logits-*"))
    assert len(cached) == 1 and read_json(cached[0] / "header.json")["state"] == "closed"
    teacher, spec = load_head_model(tiny["root"] / "sst2", task_spec("sst2"))
    tokenizer = load_tokenizer(tiny["student"])
    train = encode(spec, read_examples(task_spec("sst2"), tiny["data"]["sst2"], "train"), tokenizer, FAST["max_len"])
    live = np.stack(predict(teacher, train, setup_runtime("cpu", "fp32"), tokenizer.pad_token_id))
    rows, seen = np.load(cached[0] / "values.npy"), np.load(cached[0] / "known.npy").astype(bool)
    assert seen.sum() == 16
    np.testing.assert_allclose(rows[seen], live[seen], atol=1e-5)
    distil(tiny, tmp_path / "t", cache_dir=str(tmp_path / "cache"))
    assert cache_info(tmp_path / "t")["teacher_logits_reused"] == 16


def test_ner_cached_rows_line_up_with_a_live_teacher(tmp_path, tiny):
    teacher_dir = str(tiny["root"] / "conll2003")
    teacher, spec = load_head_model(teacher_dir, task_spec("conll2003"))
    tokenizer = load_tokenizer(tiny["student"])
    examples = read_examples(task_spec("ner"), tiny["data"]["conll2003"], "train")
    train = encode(spec, examples, tokenizer, FAST["max_len"])
    pad = tokenizer.pad_token_id
    cache = open_teacher_cache(teacher.eval(), teacher_dir, train, [train], pad, tmp_path, FAST["max_len"], None)
    cache.fill([17, 3], torch.device("cpu"))  # filled in another order and batch than the one read
    batch = collate(train.features, [5, 0, 17], pad)
    with torch.inference_mode():
        live = head_logits(spec, forward(teacher, batch))[batch["labels"] != IGNORE_INDEX]
    logits, classes = cache.batch(batch)
    torch.testing.assert_close(logits, live, atol=1e-5, rtol=1e-5)
    assert cache.computed == 4 and classes is None  # 17 and 3, then 5 and 0


def test_qa_soft_loss_ignores_padding_and_averages_start_and_end():
    student = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [9.0, 9.0]]])  # (1, L=4, 2); position 3 is padding
    teacher = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [-1e4, -1e4]]])
    batch = {"attention_mask": torch.tensor([[1, 1, 1, 0]])}
    got = soft_loss(type("Spec", (), {"kind": "qa"})(), student, teacher, batch, temperature=2.0)
    start = losses.soft_target_kl(student[:, :3, 0], teacher[:, :3, 0], 2.0)
    end = losses.soft_target_kl(student[:, :3, 1], teacher[:, :3, 1], 2.0)
    torch.testing.assert_close(got, (start + end) / 2)


def test_regression_soft_term_is_mse_to_the_teacher_score(tmp_path, tiny):
    spec = type("Spec", (), {"kind": "regression"})()
    value = soft_loss(spec, torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]]), {}, temperature=2.0)
    assert float(value) == pytest.approx((1 + 4) / 2)
    data = stsb_dir(tiny["root"])
    finetune(FinetuneConfig(model=tiny["student"], task="stsb", data=data, out=str(tmp_path / "t"), max_steps=1,
                            **FAST))  # fmt: skip
    result = task_distill(TaskDistillConfig(teacher=str(tmp_path / "t"), student=tiny["student"], task="stsb",
                                            data=data, out=str(tmp_path / "s"), max_steps=1,
                                            cache_dir=str(tmp_path / "cache"), **FAST))  # fmt: skip
    assert set(result.metrics) == {"pearson", "spearman"}


def test_qa_and_ner_distil_with_hidden_state_matching(tmp_path, tiny):
    result = distil(tiny, tmp_path / "n", task="conll2003", alpha_hidden=1.0, layer_map="1:2")
    info = read_json(tmp_path / "n" / "distilkit_task.json")
    assert info["distillation"]["hidden_pairs"] == [[1, 2]]
    assert info["labels"] == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    assert set(result.metrics) == {"precision", "recall", "f1"}
    squad = squad_dir(tiny["root"])
    fast = {**FAST, "max_len": 48, "stride": 16, "squad_dev_fraction": 0.4}
    finetune(FinetuneConfig(model=str(tiny["root"] / "encoder"), task="squad", data=squad, out=str(tmp_path / "qt"),
                            max_steps=1, seed=3, **{k: v for k, v in fast.items() if k != "seed"}))  # fmt: skip
    result = task_distill(TaskDistillConfig(teacher=str(tmp_path / "qt"), student=tiny["student"], task="squad",
                                            data=squad, out=str(tmp_path / "qs"), max_steps=1,
                                            cache_dir=str(tmp_path / "cache"), **fast))  # fmt: skip
    # the student trains and is scored on the teacher's article split (seed 3), not on its own seed's
    teacher_split = read_json(tmp_path / "qt" / "squad_split.json")["heldout_titles"]
    assert read_json(tmp_path / "qs" / "squad_split.json")["heldout_titles"] == teacher_split
    assert set(result.metrics) == {"exact_match", "f1"}


def test_incompatible_pairs_fail_up_front(tmp_path, tiny, task_tokenizer):
    with pytest.raises(ModelError, match="has no task head"):
        distil(tiny, tmp_path / "a", teacher=str(tiny["root"] / "encoder"))
    with pytest.raises(ModelError, match="TokenClassification head but task sst2"):
        distil(tiny, tmp_path / "b", teacher=str(tiny["root"] / "conll2003"))
    other_vocab = base_encoder(tmp_path / "other-vocab", layers=1)
    task_tokenizer.save_pretrained(other_vocab)  # same model, another tokenizer
    with pytest.raises(ModelError, match="tokenize differently"):
        task_distill(TaskDistillConfig(teacher=str(tiny["root"] / "sst2"), student=other_vocab, task="sst2",
                                       data=tiny["data"]["sst2"], out=str(tmp_path / "c"), **FAST))  # fmt: skip
    with pytest.raises(ConfigError, match="out of range"):
        distil(tiny, tmp_path / "d", alpha_hidden=1.0, layer_map="1:9")
    with pytest.raises(ConfigError, match="nothing to train") as error:
        TaskDistillConfig(teacher="t", student="s", task="sst2", data="d", out="o", alpha_kl=0, alpha_hard=0,
                          temperature=0)  # fmt: skip
    assert "--temperature" in str(error.value)


def test_schedules_are_applied_and_logged_at_each_step(tmp_path, tiny):
    distil(tiny, tmp_path / "s", max_steps=3, log_every=1, temperature="4:1", alpha_kl="cosine:1:0.5")
    records = [r for r in read_jsonl(tmp_path / "s" / "train_log.jsonl") if "terms" in r]
    temperature, kl = parse_schedule("4:1"), parse_schedule("cosine:1:0.5")
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:  # a record's step is 1-based: its values are the schedules' at step − 1 of 3
        assert record["temperature"] == pytest.approx(temperature.value(record["step"] - 1, 3))
        assert record["weights"] == pytest.approx({"kl": kl.value(record["step"] - 1, 3), "hard": 0.5})
        weighted = sum(record["weights"][name] * value for name, value in record["terms"].items())
        assert record["loss"] == pytest.approx(weighted, rel=1e-5)
    assert cache_info(tmp_path / "s")["temperature"] == "4:1"


def test_narrower_student_matches_hidden_states_through_a_projection_it_does_not_save(tmp_path, tiny):
    make_model(tmp_path / "narrow", "bert", mlm=False, layers=1, hidden=16, seed=1)
    config = TaskDistillConfig(teacher=str(tiny["root"] / "sst2"), student=str(tmp_path / "narrow"), task="sst2",
                               data=tiny["data"]["sst2"], out=str(tmp_path / "s"), max_steps=2, alpha_hidden=1.0,
                               cache_dir=str(tmp_path / "cache"), **FAST)  # fmt: skip
    with pytest.raises(ModelError, match=PROJECTION_FILE):
        task_distill(config)
    save_file({"weight": torch.eye(32, 16)}, str(tmp_path / "narrow" / PROJECTION_FILE))
    task_distill(config)
    records = [r for r in read_jsonl(tmp_path / "s" / "train_log.jsonl") if "terms" in r]
    assert all(set(r["terms"]) == {"kl", "hard", "hidden"} and np.isfinite(r["terms"]["hidden"]) for r in records)
    assert cache_info(tmp_path / "s")["hidden_projection"] is True
    assert not (tmp_path / "s" / PROJECTION_FILE).exists()
    assert not any("projection" in key for key in load_file(tmp_path / "s" / "model.safetensors"))
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "s").config.hidden_size == 16


def test_cli_bad_schedule_is_one_line_and_exit_2(tmp_path, tiny):
    result = CliRunner().invoke(app, ["task-distill", "--teacher", str(tiny["root"] / "sst2"), "--student",
                                      tiny["student"], "--task", "sst2", "--data", tiny["data"]["sst2"], "--out",
                                      str(tmp_path / "s"), "--temperature", "2:0"])  # fmt: skip
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error:") and "--temperature must be > 0" in lines[0]
