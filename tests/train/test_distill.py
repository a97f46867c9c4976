"""General distillation on tiny random models: the loss, its terms, accumulation, outputs, refusals."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM

from distilkit.data.dataset import TokenDataset
from distilkit.errors import ConfigError, ModelError
from distilkit.models.student import build_student
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.objective import Objective, compute_terms
from tiny import SPECIALS, make_model, make_tokenizer, write_token_data


@pytest.fixture
def setup(tmp_path):
    """A 4-layer MLM teacher, a 2-layer student from layers [0, 3], 64 token sequences."""
    teacher = make_model(tmp_path / "teacher", "bert", mlm=True, layers=4)
    build_student(teacher, [0, 3]).save_pretrained(tmp_path / "student")
    make_tokenizer(tmp_path / "student")
    write_token_data(tmp_path / "data", n_sequences=64)
    return DistillConfig(
        teacher=str(tmp_path / "teacher"), student=str(tmp_path / "student"), data=str(tmp_path / "data"),
        out=str(tmp_path / "out"), batch_size=8, max_steps=4, save_every=2, tensorboard=False,
    )  # fmt: skip


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _masked_predictions_in_data_words(model, data_dir, n_words: int = 8) -> float:
    """Fraction of sequences where the model's top guess at a [MASK] (third position) is one of the data's words."""
    data = TokenDataset(data_dir)
    ids = torch.stack([torch.from_numpy(data[i][:6].astype("int64")) for i in range(len(data))])  # [CLS] + 5 words
    ids[:, 2] = data.meta["special_ids"]["mask"]
    with torch.no_grad():
        guesses = model.eval()(input_ids=ids).logits[:, 2].argmax(-1)
    first_word = len(SPECIALS)  # write_token_data draws words from the ids right after the specials
    return ((guesses >= first_word) & (guesses < first_word + n_words)).float().mean().item()


def test_triple_loss_trains_and_saves_a_loadable_student(setup, tmp_path):
    write_token_data(tmp_path / "data", n_sequences=64, n_words=8)  # a learnable word distribution
    config = dataclasses.replace(setup, max_steps=30, lr=2e-3, warmup_ratio=0.0, tensorboard=True)
    events = []
    result = distill(config, callback=events.append)
    records = _records(tmp_path / "out")
    assert [r["step"] for r in records] == list(range(1, 31))
    assert set(records[0]["terms"]) == {"kl", "mlm", "cos"}
    # The logged total is the weighted sum of the logged terms (DistilBERT weights 5/2/1).
    r = records[-1]
    assert r["loss"] == pytest.approx(5 * r["terms"]["kl"] + 2 * r["terms"]["mlm"] + r["terms"]["cos"], rel=1e-6)
    first = sum(x["loss"] for x in records[:5]) / 5
    last = sum(x["loss"] for x in records[-5:]) / 5
    assert last < 0.9 * first
    assert result.steps == 30 and result.skipped_steps == 0
    student = AutoModelForMaskedLM.from_pretrained(result.student_dir)
    assert student.config.num_hidden_layers == 2
    # It learnt the data, not just lowered a number: at a [MASK] the trained student predicts one of the 8 words
    # the data is made of (chance: 8 of 145 ids); the student it started from, like the random teacher, does not.
    initial = AutoModelForMaskedLM.from_pretrained(setup.student)
    assert _masked_predictions_in_data_words(student, setup.data) >= 0.9
    assert _masked_predictions_in_data_words(initial, setup.data) < 0.2
    assert any((tmp_path / "out" / "tb").iterdir())
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["config"]["alpha_kl"] == 5.0 and "torch" in saved["versions"]
    assert {e["event"] for e in events} >= {"start", "step", "checkpoint", "done"}


def test_gradient_accumulation_equals_one_large_batch(setup, tmp_path):
    """Losses are normalised by global counts: 2×8 accumulated == one batch of 16."""
    big = distill(dataclasses.replace(setup, batch_size=16, grad_accum=1, out=str(tmp_path / "big")))
    small = distill(dataclasses.replace(setup, batch_size=8, grad_accum=2, out=str(tmp_path / "small")))
    big_records, small_records = _records(big.out), _records(small.out)
    for a, b in zip(big_records, small_records, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["tokens"] == b["tokens"]
    big_w = load_file(big.student_dir / "model.safetensors")
    small_w = load_file(small.student_dir / "model.safetensors")
    assert all(torch.allclose(big_w[k], small_w[k], atol=1e-5) for k in big_w)


def test_hidden_and_attention_terms(setup):
    events = []
    result = distill(dataclasses.replace(setup, alpha_hidden=1.0, alpha_attention=1.0), callback=events.append)
    step = next(e for e in events if e["event"] == "step")
    assert set(step["terms"]) == {"kl", "mlm", "cos", "hidden", "attention"}
    assert all(v >= 0 for v in step["terms"].values())
    # Student layers copy teacher layers [0, 3]: hidden states 1↔1 and 2↔4, attention of the last layers 2↔4.
    # Student layer 2 reads layer 0's output where teacher layer 4 read layer 3's, so both terms start above 0.
    objective = json.loads((result.out / "config.json").read_text())["objective"]
    assert objective["hidden_pairs"] == [[1, 1], [2, 4]] and objective["attention_pairs"] == [[2, 4]]
    assert step["terms"]["hidden"] > 0 and step["terms"]["attention"] > 0


def test_hidden_and_attention_terms_by_hand():
    """compute_terms picks the matched layers (hidden index 0 = embeddings, attention 1-based), drops padded
    tokens and padded queries, and divides by the global token count times the number of layer pairs."""
    objective = Objective(
        {"hidden": 1.0, "attention": 1.0}, 1.0, hidden_pairs=[(1, 2), (2, 4)], attention_pairs=[(2, 3)]
    )
    mask = torch.tensor([[1, 1, 0]])  # one sequence, the third token is padding
    pad = [9.0, 9.0]  # a padded row far from everything: counted, it would dominate

    def unmatched(k: int) -> torch.Tensor:  # a layer no pair names: 0, 10, 20, … everywhere
        return torch.full((1, 3, 2), 10.0 * k)

    student_hidden = (
        unmatched(5),  # the embedding output
        torch.tensor([[[1.0, 0.0], [0.0, 1.0], pad]]),
        torch.tensor([[[2.0, 2.0], [1.0, 1.0], pad]]),
    )
    teacher_hidden = (
        unmatched(0),
        unmatched(1),
        torch.tensor([[[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]),
        unmatched(3),
        torch.tensor([[[0.0, 2.0], [1.0, -1.0], [0.0, 0.0]]]),
    )

    def attention(head_0_rows, head_1_rows):  # (query rows per head) → (B=1, H=2, L=3, L=3)
        return torch.tensor([[head_0_rows, head_1_rows]])

    same = [[0.2, 0.8, 0.0], [0.6, 0.4, 0.0], [1.0, 0.0, 0.0]]
    uniform = attention([[1 / 3] * 3] * 3, [[1 / 3] * 3] * 3)  # every unmatched layer
    student_attention = (
        uniform,
        attention([[0.25, 0.75, 0.0], [0.5, 0.5, 0.0], [0.001, 0.999, 0.0]], same),
        uniform,
    )
    teacher_attention = (uniform, uniform, attention([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], same))
    terms = compute_terms(
        objective,
        {"hidden": student_hidden, "attentions": student_attention},
        {"hidden": teacher_hidden, "attentions": teacher_attention},
        mask,
        None,
        {"tokens": 4.0, "masked": 1.0, "sequences": 1.0},  # this micro-batch holds 2 of the step's 4 tokens
    )
    # hidden, pair 1↔2: rows ((1−0)² + 0²)/2 = 0.5 and 0; pair 2↔4: (2² + 0²)/2 = 2 and (0² + 2²)/2 = 2.
    # Sum 4.5 over 4 global tokens × 2 pairs = 0.5625.
    assert terms["hidden"].item() == pytest.approx(0.5625, abs=1e-6)
    # attention, student layer 2 ↔ teacher layer 3, KL(teacher ‖ student) per query, averaged over the 2 heads:
    # query 1, head 0: 0.5·ln(0.5/0.25) + 0.5·ln(0.5/0.75) = 0.143841; query 2, head 0: 1·ln(1/0.5) = 0.693147;
    # head 1 is the same in both → 0. (0.143841 + 0.693147) / 2 heads = 0.418494, over 4 tokens × 1 pair = 0.104624.
    assert terms["attention"].item() == pytest.approx(0.104624, abs=1e-6)


def test_teacher_without_mlm_head_distils_through_hidden_states_only(tmp_path):
    teacher = make_model(tmp_path / "teacher", "bert", mlm=False, layers=4)
    build_student(teacher, [0, 3]).save_pretrained(tmp_path / "student")
    write_token_data(tmp_path / "data", n_sequences=32)
    events = []
    result = distill(
        DistillConfig(str(tmp_path / "teacher"), str(tmp_path / "student"), str(tmp_path / "data"),
                      str(tmp_path / "out"), batch_size=8, max_steps=2, alpha_hidden=1.0, tensorboard=False),
        callback=events.append,
    )  # fmt: skip
    notes = [e["message"] for e in events if e["event"] == "note"]
    assert any("no masked-LM head" in n for n in notes)
    assert result.terms == ["cos", "hidden"]
    assert set(_records(result.out)[0]["terms"]) == {"cos", "hidden"}
    AutoModel.from_pretrained(result.student_dir)


def test_mlm_teacher_with_bare_student_is_refused(setup, tmp_path):
    make_model(tmp_path / "bare", "bert", mlm=False, layers=2)
    with pytest.raises(ModelError, match="student has no masked-LM head"):
        distill(dataclasses.replace(setup, student=str(tmp_path / "bare")))


def test_incompatible_hidden_size_is_refused_before_training(setup, tmp_path):
    make_model(tmp_path / "narrow", "bert", mlm=True, layers=2, hidden=16)
    with pytest.raises(ModelError, match="hidden size"):
        distill(dataclasses.replace(setup, student=str(tmp_path / "narrow"), alpha_kl=0, alpha_mlm=0))
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_vocab_mismatch_is_refused(setup, tmp_path):
    meta_path = tmp_path / "data" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["vocab_size"] = 30522
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="vocabulary"):
        distill(setup)


def test_non_empty_out_needs_resume_or_overwrite(setup, tmp_path):
    distill(setup)
    with pytest.raises(ConfigError, match="--resume"):
        distill(setup)
    distill(dataclasses.replace(setup, overwrite=True))


def test_config_reports_every_problem_at_once(setup):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(setup, temperature=0, batch_size=0, lr=-1)
    message = str(info.value)
    assert "temperature" in message and "batch-size" in message and "--lr" in message
    with pytest.raises(ConfigError, match="nothing to train"):
        dataclasses.replace(setup, alpha_kl=0, alpha_mlm=0, alpha_cos=0)


def test_time_budget_replans_its_length_as_the_pace_changes(setup, tmp_path, monkeypatch):
    """The first steps' pace is not the run's (length-grouped batches differ in cost): the planned length follows
    the latest estimate, never beyond the planned epochs, and the learning rate still decays to 0 at the end."""
    from distilkit.train import loop

    plans = []

    def steps_within_budget(step, elapsed, since_step, since_elapsed, budget):
        plans.append(step)
        return 12 if step < 10 else 45  # the first measurement underestimates what fits

    monkeypatch.setattr(loop, "steps_within_budget", steps_within_budget)
    config = dataclasses.replace(setup, max_steps=None, epochs=10, time_budget=3600.0, warmup_ratio=0.0)
    result = distill(config)
    assert plans[:3] == [5, 10, 20]
    assert result.steps == 45
    records = _records(tmp_path / "out")
    assert records[-1]["step"] == 45 and records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_time_budget_never_plans_beyond_the_epochs(setup, tmp_path, monkeypatch):
    from distilkit.train import loop

    monkeypatch.setattr(loop, "steps_within_budget", lambda step, *rest: 10**6)
    result = distill(dataclasses.replace(setup, max_steps=None, epochs=2, time_budget=3600.0))
    assert result.steps == 16  # 64 sequences, batch 8, 2 epochs
