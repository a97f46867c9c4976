"""distill's MiniLM terms (value relation, MiniLMv2 relations) and their Q/K/V hooks, students narrower than the
teacher on every hidden-state term, and loss weights and temperature that follow a schedule — on tiny models."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM
from typer.testing import CliRunner

from distilkit import losses
from distilkit.cli import app
from distilkit.errors import ConfigError
from distilkit.models.student import PROJECTION_FILE, InitStudentConfig, build_student, init_student
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.objective import EncoderWithHead, Objective, attention_projections, compute_terms
from distilkit.train.schedule import parse_schedule
from distilkit.train.setup import relation_heads
from tiny import make_model, tiny_config, write_token_data


@pytest.fixture
def setup(tmp_path):
    """A 4-layer MLM teacher (hidden 32, 2 heads), a 2-layer student from its layers [0, 3], 64 sequences."""
    teacher = make_model(tmp_path / "teacher", "bert", mlm=True, layers=4)
    build_student(teacher, [0, 3]).save_pretrained(tmp_path / "student")
    write_token_data(tmp_path / "data", n_sequences=64)
    return DistillConfig(
        teacher=str(tmp_path / "teacher"), student=str(tmp_path / "student"), data=str(tmp_path / "data"),
        out=str(tmp_path / "out"), batch_size=8, max_steps=4, save_every=4, tensorboard=False,
    )  # fmt: skip


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
def test_hooks_capture_each_layers_queries_keys_and_values(kind):
    """What the hooks hand over is the layer's Q/K/V projection of that layer's input (hidden state i − 1)."""
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(kind, layers=3)).eval()
    forward = EncoderWithHead(model, qkv_layers=[2, 3])
    ids = torch.randint(5, 100, (2, 7))
    with torch.no_grad():
        out = forward(ids, torch.ones_like(ids), None, True, False)
        assert sorted(out["qkv"]) == [2, 3] and out["heads"] == 2
        for layer in (2, 3):
            for captured, projection in zip(out["qkv"][layer], attention_projections(model, layer), strict=True):
                torch.testing.assert_close(captured, projection(out["hidden"][layer - 1]))
    assert EncoderWithHead(model)(ids, torch.ones_like(ids), None, False, False)["qkv"] is None  # no hooks: none


def test_relation_term_compares_other_widths_and_head_counts_and_reaches_the_student():
    """MiniLMv2: a 16-wide, 4-head student against a 32-wide, 2-head teacher; the term is the sum of the q-q, k-k and
    v-v relation KLs over the pairs' non-pad tokens, and its gradient reaches the student's projections."""
    torch.manual_seed(0)
    student = AutoModel.from_config(tiny_config("bert", layers=2, hidden=16, heads=4))
    teacher = AutoModel.from_config(tiny_config("distilbert", layers=3, hidden=32, heads=2)).eval()
    heads = relation_heads(None, (16, 32))
    assert heads == 16  # the largest divisor of both widths up to MiniLMv2's 48
    objective = Objective({"relation": 1.0}, 1.0, relation_pairs=[(2, 3)], relation_heads=heads)
    ids, mask = torch.randint(5, 100, (2, 6)), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    student_out = EncoderWithHead(student, qkv_layers=[2])(ids, mask, None, False, False)
    with torch.no_grad():
        teacher_out = EncoderWithHead(teacher, qkv_layers=[3])(ids, mask, None, False, False)
    terms = compute_terms(objective, student_out, teacher_out, mask, None, {"tokens": 10.0})
    expected = sum(
        losses.attention_relation_kl(s, t, mask, 16, 10.0)
        for s, t in zip(student_out["qkv"][2], teacher_out["qkv"][3], strict=True)
    )
    assert torch.isfinite(terms["relation"]) and terms["relation"].item() == pytest.approx(expected.item())
    assert terms["relation"].item() > 0
    terms["relation"].backward()
    for projection in attention_projections(student, 2):
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0


def test_relation_distils_a_student_with_other_width_and_heads(setup, tmp_path):
    make_model(tmp_path / "other", "bert", mlm=True, layers=2, hidden=16, heads=4, seed=1)
    config = dataclasses.replace(setup, student=str(tmp_path / "other"), alpha_cos=0, alpha_relation=1.0)
    result = distill(config)
    records = _records(result.out)
    assert set(records[0]["terms"]) == {"kl", "mlm", "relation"}
    assert all(math.isfinite(r["terms"]["relation"]) and r["terms"]["relation"] > 0 for r in records)
    objective = json.loads((result.out / "config.json").read_text())["objective"]
    assert objective["relation_pairs"] == [[2, 4]] and objective["relation_heads"] == 16
    with pytest.raises(ConfigError, match="must divide both hidden sizes"):
        distill(dataclasses.replace(config, relation_heads=3, overwrite=True))


def test_value_relation_term_trains_and_is_logged(setup):
    result = distill(dataclasses.replace(setup, alpha_value_relation=1.0, relation_map="1:2,2:4"))
    records = _records(result.out)
    assert set(records[0]["terms"]) == {"kl", "mlm", "cos", "value_relation"}
    # student layer 2 reads layer 0's output where teacher layer 4 read layer 3's: the relations differ
    values = [r["terms"]["value_relation"] for r in records]
    assert all(math.isfinite(value) for value in values) and values[0] > 0
    assert json.loads((result.out / "config.json").read_text())["objective"]["relation_pairs"] == [[1, 2], [2, 4]]


@pytest.mark.parametrize("flag", ["alpha_value_relation", "alpha_attention"])
def test_minilm_v1_terms_with_unequal_heads_point_at_the_relation_term(setup, tmp_path, flag):
    make_model(tmp_path / "four-heads", "bert", mlm=True, layers=2, heads=4)
    with pytest.raises(ConfigError, match="--alpha-relation") as error:
        distill(dataclasses.replace(setup, student=str(tmp_path / "four-heads"), **{flag: 1.0}))
    assert "\n" not in str(error.value) and "2 and the student 4" in str(error.value)
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_narrower_student_trains_cosine_and_hidden_terms_through_the_projection(setup, tmp_path):
    """An MLM student of hidden size 16 from a 32-wide teacher: cos and hidden go through the loss projection P,
    trained with the student; the saved student holds its own weights only (P stays beside it, in its own file)."""
    (tmp_path / "probe.txt").write_text("the sea was long\na whale and a ship\nshe said the house was good\n" * 8)
    init_student(InitStudentConfig(setup.teacher, str(tmp_path / "narrow"), layers="0,3", hidden_size=16,
                                   probe_text=str(tmp_path / "probe.txt")))  # fmt: skip
    initial = load_file(tmp_path / "narrow" / PROJECTION_FILE)["weight"]
    result = distill(dataclasses.replace(setup, student=str(tmp_path / "narrow"), alpha_hidden=1.0, lr=1e-3))
    records = _records(result.out)
    assert set(records[0]["terms"]) == {"kl", "mlm", "cos", "hidden"}
    assert all(math.isfinite(r["loss"]) for r in records)
    checkpoint = load_file(next((result.out / "checkpoints").iterdir()) / "model.safetensors")
    assert "projection.weight" in checkpoint
    saved = load_file(result.student_dir / "model.safetensors")
    assert not any("projection" in key for key in saved)
    student = AutoModelForMaskedLM.from_pretrained(result.student_dir)
    assert student.config.hidden_size == 16
    trained = load_file(result.student_dir / PROJECTION_FILE)["weight"]
    assert trained.shape == (32, 16) and not torch.equal(trained, initial)


def test_schedules_are_applied_and_recorded_at_each_step(setup, tmp_path):
    config = dataclasses.replace(setup, temperature="4:1", alpha_kl="cosine:5:1", alpha_cos="0.5", tensorboard=True)
    result = distill(config)
    records = _records(result.out)
    temperature, kl = parse_schedule("4:1"), parse_schedule("cosine:5:1")
    for record in records:  # a record's step is 1-based: it was taken at 0-based step − 1
        assert record["temperature"] == pytest.approx(temperature.value(record["step"] - 1, 4))
        assert record["weights"] == pytest.approx({"kl": kl.value(record["step"] - 1, 4), "mlm": 2.0, "cos": 0.5})
        weighted = sum(record["weights"][name] * value for name, value in record["terms"].items())
        assert record["loss"] == pytest.approx(weighted, rel=1e-6)
    assert records[0]["weights"]["kl"] == 5.0 and records[-1]["temperature"] == pytest.approx(1.75)
    saved = json.loads((result.out / "config.json").read_text())
    assert saved["config"]["temperature"] == "4:1" and saved["objective"]["weights"]["kl"] == "cosine:5:1"
    assert saved["objective"]["temperature"] == "4:1"
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(result.out / "tb"))
    events.Reload()
    assert {"weight/kl", "weight/mlm", "weight/cos", "train/temperature"} <= set(events.Tags()["scalars"])
    assert [e.value for e in events.Scalars("train/temperature")] == pytest.approx([4.0, 3.25, 2.5, 1.75])


def test_bad_schedules_are_one_line_errors():
    base = {"teacher": "t", "student": "s", "data": "d", "out": "o"}
    with pytest.raises(ConfigError) as error:
        DistillConfig(**base, temperature="4:0", alpha_kl="5:x", alpha_mlm="1:-1")
    message = str(error.value)
    assert "--temperature must be > 0" in message and "--alpha-kl: cannot read '5:x'" in message
    assert "--alpha-mlm must be ≥ 0" in message and "\n" not in message


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_bad_schedule_exits_2_with_one_line(setup):
    flags = ["distill", "--teacher", setup.teacher, "--student", setup.student, "--data", setup.data, "--out",
             setup.out]  # fmt: skip
    for flag, value, fragment in (("--temperature", "cosine:4", "cannot read"), ("--alpha-kl", "2:-1", "≥ 0")):
        result = _invoke(*flags, flag, value)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert fragment in lines[0]


def test_cli_alpha_ce_is_a_deprecated_alias_of_alpha_kl(setup):
    result = _invoke("distill", "--teacher", setup.teacher, "--student", setup.student, "--data", setup.data,
                     "--out", setup.out, "--max-steps", "1", "--no-tensorboard", "--alpha-ce", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--alpha-ce is deprecated" in result.output and "--alpha-ce" not in _invoke("distill", "--help").output
    saved = json.loads((Path(setup.out) / "config.json").read_text())
    assert saved["config"]["alpha_kl"] == "3" and "alpha_ce" not in saved["config"]
