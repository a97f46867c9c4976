"""Each loss term against a value worked out by hand."""

import math

import pytest
import torch

from distilkit import losses


def test_soft_target_kl_hand_value_temperature_1():
    # teacher p = softmax([ln 3, 0]) = [0.75, 0.25]; student q = [0.5, 0.5]
    # KL(p‖q) = 0.75·ln(1.5) + 0.25·ln(0.5) = 0.304099 − 0.173287 = 0.130812
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    assert losses.soft_target_kl(student, teacher, 1.0).item() == pytest.approx(0.130812, abs=1e-5)


def test_soft_target_kl_hand_value_temperature_2_scaled_by_t_squared():
    # T=2: p = softmax([ln3/2, 0]) = [√3/(√3+1), 1/(√3+1)] = [0.633975, 0.366025], q = [0.5, 0.5]
    # KL = 0.633975·ln(1.267949) + 0.366025·ln(0.732051) = 0.150506 − 0.114165 = 0.036341; ×T² = 0.145363
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    assert losses.soft_target_kl(student, teacher, 2.0).item() == pytest.approx(0.145363, abs=1e-5)


def test_soft_target_kl_is_zero_for_equal_logits_and_averages_rows():
    logits = torch.randn(5, 7)
    assert losses.soft_target_kl(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    # Two rows: one with KL 0.130812, one with 0 → mean 0.065406; with normalizer 4 → 0.032703.
    student = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [5.0, 5.0]])
    assert losses.soft_target_kl(student, teacher, 1.0).item() == pytest.approx(0.065406, abs=1e-5)
    assert losses.soft_target_kl(student, teacher, 1.0, normalizer=4).item() == pytest.approx(0.032703, abs=1e-5)


def test_masked_lm_ce_hand_value():
    # Every row gives every class a different probability, so only the labelled entry of each row gives the value:
    # row 0 p = [.1, .2, .3, .4], label 2 → −ln .3 = 1.203973; row 1 p = [.4, .3, .2, .1], label 0 → −ln .4 =
    # 0.916291; row 2 p = [.25, .5, .125, .125], label 1 → −ln .5 = 0.693147. Sum 2.813411, mean 0.937804.
    probabilities = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.25, 0.5, 0.125, 0.125]])
    logits = probabilities.log() + torch.tensor([[1.0], [-2.0], [0.5]])  # a shift per row changes no softmax
    labels = torch.tensor([2, 0, 1])
    assert losses.masked_lm_ce(logits, labels).item() == pytest.approx(0.937804, abs=1e-6)
    assert losses.masked_lm_ce(logits, labels, normalizer=6).item() == pytest.approx(0.468902, abs=1e-6)
    # The same rows in another order with their labels: the same loss (labels travel with their rows).
    order = torch.tensor([2, 0, 1])
    assert losses.masked_lm_ce(logits[order], labels[order]).item() == pytest.approx(0.937804, abs=1e-6)


def test_hidden_cosine_hand_value():
    # Row 1: orthogonal → 1 − 0 = 1. Row 2: [1,1] vs [1,0] → 1 − 1/√2 = 0.292893. Mean = 0.646447.
    student = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    teacher = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert losses.hidden_cosine(student, teacher).item() == pytest.approx(0.646447, abs=1e-6)


def test_hidden_mse_hand_value():
    # Row 1: ((1−0)² + (2−0)²)/2 = 2.5; row 2: 0 → mean 1.25; with normalizer 5 → 0.5.
    student = torch.tensor([[1.0, 2.0], [3.0, 3.0]])
    teacher = torch.tensor([[0.0, 0.0], [3.0, 3.0]])
    assert losses.hidden_mse(student, teacher).item() == pytest.approx(1.25)
    assert losses.hidden_mse(student, teacher, normalizer=5).item() == pytest.approx(0.5)


def test_attention_kl_hand_value_with_zero_mass_keys():
    # Head 1: KL([.5,.5,0] ‖ [.25,.75,0]) = .5·ln 2 + .5·ln(2/3) = 0.346574 − 0.202733 = 0.143841.
    # Head 2: identical → 0. Mean over heads = 0.071921 (the padded third key contributes nothing).
    teacher = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]])
    student = torch.tensor([[[0.25, 0.75, 0.0], [0.2, 0.8, 0.0]]])
    value = losses.attention_kl(student, teacher)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(0.071921, abs=1e-5)


def test_weighted_sum_uses_weights_and_rejects_empty():
    terms = {"kl": torch.tensor(2.0), "cos": torch.tensor(3.0)}
    assert losses.weighted_sum(terms, {"kl": 5.0, "cos": 1.0, "mlm": 2.0}).item() == pytest.approx(13.0)
    with pytest.raises(ValueError):
        losses.weighted_sum({}, {"kl": 1.0})


def test_normalizer_makes_split_batches_sum_to_the_whole_batch():
    """Summing two halves normalised by the global count equals the loss of the whole batch."""
    torch.manual_seed(0)
    student, teacher = torch.randn(10, 6), torch.randn(10, 6)
    whole = losses.soft_target_kl(student, teacher, 2.0)
    halves = losses.soft_target_kl(student[:3], teacher[:3], 2.0, 10) + losses.soft_target_kl(
        student[3:], teacher[3:], 2.0, 10
    )
    assert halves.item() == pytest.approx(whole.item(), rel=1e-6)


def test_similarity_mse_compares_in_batch_cosine_matrices():
    student = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # orthogonal: similarity matrix I
    teacher = torch.tensor([[1.0, 0.0, 0.0], [5.0, 0.0, 0.0]])  # parallel, wider: all ones
    # squared gaps [[0, 1], [1, 0]] → row means 0.5, 0.5 → sum 1.0 → / 2 rows (or the normalizer)
    assert losses.similarity_mse(student, teacher).item() == pytest.approx(0.5)
    assert losses.similarity_mse(student, teacher, normalizer=4).item() == pytest.approx(0.25)


def test_similarity_mse_is_zero_for_a_rotated_and_rescaled_teacher():
    teacher = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)))
    student = 3.0 * teacher @ rotation
    assert losses.similarity_mse(student, teacher).item() == pytest.approx(0.0, abs=1e-6)
