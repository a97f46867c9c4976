"""Each loss term against a value worked out by hand."""

import math

import pytest
import torch

from distilkit import losses
from distilkit.errors import ConfigError


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


def test_projected_hidden_mse_hand_value_and_trains_the_projection():
    # W = [[1], [−1]] maps s=1 → [1, −1] and s=2 → [2, −2]. Row 1 matches t = [1, −1]: 0; row 2 against
    # t = [0, 0]: (4 + 4)/2 = 4. Mean over the 2 rows = 2.0.
    student = torch.tensor([[1.0], [2.0]])
    teacher = torch.tensor([[1.0, -1.0], [0.0, 0.0]])
    weight = torch.tensor([[1.0], [-1.0]], requires_grad=True)
    value = losses.projected_hidden_mse(student, teacher, weight)
    assert value.item() == pytest.approx(2.0)
    value.backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    # An identity projection is plain hidden_mse.
    generator = torch.Generator().manual_seed(0)
    rows, targets = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    identity = losses.projected_hidden_mse(rows, targets, torch.eye(3))
    assert identity.item() == pytest.approx(losses.hidden_mse(rows, targets).item())


def _value_relation_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two sequences of 3 positions, one head of width 1: (B=2, H=1, L=3, d=1) values and a (2, 3) mask."""
    student = torch.tensor([[1.0, 0.0, 9.0], [0.0, 0.0, 0.0]]).reshape(2, 1, 3, 1)
    teacher = torch.tensor([[0.0, 0.0, 7.0], [1.0, 0.0, 0.0]]).reshape(2, 1, 3, 1)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return student, teacher, mask


def test_value_relation_kl_hand_value_on_a_padded_batch():
    # VR = softmax(V Vᵀ / √1) over the real columns. Sequence 1 (third position padded):
    #   row 1: student scores [1, 0] → [e/(e+1), 1/(e+1)] = [0.731059, 0.268941]; teacher [0, 0] → [.5, .5];
    #          KL = .5·ln(.5/.731059) + .5·ln(.5/.268941) = .5·(−0.379885 + 0.620115) = 0.120115
    #   row 2: both uniform → 0.
    # Sequence 2: row 1 teacher scores [1, 0, 0] → [e/(e+2), 1/(e+2), 1/(e+2)] = [0.576117, 0.211942, 0.211942],
    #   student uniform 1/3: KL = 0.576117·ln 1.728350 + 2·0.211942·ln 0.635825
    #   = 0.576117·0.547168 + 2·0.211942·(−0.452832) = 0.315232 − 0.191948 = 0.123284; rows 2, 3 → 0.
    # Five real rows: (0.120115 + 0.123284) / 5 = 0.048680; normalizer 10 → 0.024340.
    student, teacher, mask = _value_relation_batch()
    assert losses.value_relation_kl(student, teacher, mask).item() == pytest.approx(0.048680, abs=1e-5)
    assert losses.value_relation_kl(student, teacher, mask, normalizer=10).item() == pytest.approx(0.024340, abs=1e-5)
    # The direction matters: KL(student ‖ teacher) of sequence 1's row 1 would be 0.110944, not 0.120115.
    assert losses.value_relation_kl(teacher, student, mask).item() != pytest.approx(0.048680, abs=1e-4)


def test_value_relation_kl_ignores_padded_positions_and_is_zero_for_equal_values():
    student, teacher, mask = _value_relation_batch()
    before = losses.value_relation_kl(student, teacher, mask)
    student[0, :, 2], teacher[0, :, 2] = -50.0, 123.0  # the padded position of sequence 1
    assert losses.value_relation_kl(student, teacher, mask).item() == pytest.approx(before.item(), abs=1e-7)
    values = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    assert losses.value_relation_kl(values, values, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_value_relation_kl_needs_equal_head_counts():
    mask = torch.ones(1, 3)
    with pytest.raises(ConfigError, match="equal head counts") as error:
        losses.value_relation_kl(torch.randn(1, 2, 3, 4), torch.randn(1, 4, 3, 4), mask)
    assert "\n" not in str(error.value) and "MiniLMv2" in str(error.value)
    # Head widths may differ: 2 heads of width 4 against 2 heads of width 8.
    assert torch.isfinite(losses.value_relation_kl(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 8), mask))


def test_attention_relation_kl_hand_value_splits_into_relation_heads():
    # Student width 2 → 2 relation heads of width 1; teacher width 4 → 2 heads of width 2, all zeros (uniform).
    # Row 1: head 1 sees [1], [0] → KL(uniform ‖ [0.731059, 0.268941]) = 0.120115; head 2 sees zeros → 0;
    # mean over relation heads 0.060057. Row 2: 0. Mean over the 2 rows: 0.030029.
    student = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    teacher = torch.zeros(1, 2, 4)
    mask = torch.ones(1, 2)
    assert losses.attention_relation_kl(student, teacher, mask, relation_heads=2).item() == pytest.approx(
        0.030029, abs=1e-5
    )


def test_attention_relation_kl_scales_by_the_relation_head_width():
    # One relation head of width 2: student row 1 scores [(1+1)/√2, 0] = [√2, 0], ln(e^√2 + 1) = 1.631835,
    # KL(uniform ‖ student) = ln .5 − .5·(√2 − 2·1.631835) = −0.693147 + 0.924729 = 0.231581. Row 2: 0 → mean 0.115791.
    student = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    teacher = torch.zeros(1, 2, 6)
    assert losses.attention_relation_kl(student, teacher, torch.ones(1, 2), 1).item() == pytest.approx(
        0.115791, abs=1e-5
    )


def test_attention_relation_kl_ignores_padding_and_matches_the_unpadded_sequence():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 8, generator=generator), torch.randn(2, 3, 12, generator=generator)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    before = losses.attention_relation_kl(student, teacher, mask, 4)
    student[0, 2], teacher[0, 2] = 100.0, -100.0
    assert losses.attention_relation_kl(student, teacher, mask, 4).item() == pytest.approx(before.item(), abs=1e-6)
    # Sequence 1 alone, unpadded, weighted by its 2 of the batch's 5 rows: the same share of the loss.
    alone = losses.attention_relation_kl(student[:1, :2], teacher[:1, :2], torch.ones(1, 2), 4, normalizer=5)
    rest = losses.attention_relation_kl(student[1:], teacher[1:], mask[1:], 4, normalizer=5)
    assert (alone + rest).item() == pytest.approx(before.item(), rel=1e-5)
    assert losses.attention_relation_kl(student, student, mask, 4).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_relation_kl_stays_finite_with_a_wholly_padded_sequence():
    student = torch.randn(2, 3, 8, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    value = losses.attention_relation_kl(student, torch.randn(2, 3, 8), mask, 2)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(student.grad).all()
    assert student.grad[1].abs().sum() == 0


def test_value_relation_kl_is_attention_relation_kl_with_one_relation_head_per_attention_head():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(2, 3, 4, 5, generator=generator), torch.randn(2, 3, 4, 7, generator=generator)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    per_head = losses.value_relation_kl(student, teacher, mask)
    concatenated = losses.attention_relation_kl(
        student.transpose(1, 2).flatten(2), teacher.transpose(1, 2).flatten(2), mask, 3
    )
    assert concatenated.item() == pytest.approx(per_head.item(), rel=1e-5)


@pytest.mark.parametrize("relation_heads", [5, 0])
def test_attention_relation_kl_rejects_relation_heads_that_do_not_divide_the_widths(relation_heads):
    with pytest.raises(ConfigError, match="must divide both hidden sizes") as error:
        losses.attention_relation_kl(torch.randn(1, 2, 32), torch.randn(1, 2, 48), torch.ones(1, 2), relation_heads)
    message = str(error.value)
    assert "\n" not in message and "student 32, teacher 48" in message and "divisor of 16" in message
