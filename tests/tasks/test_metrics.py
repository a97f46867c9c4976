"""Metrics against values worked out by hand, and against the libraries they wrap on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from seqeval import metrics as seqeval_metrics
from sklearn import metrics as sklearn_metrics

from distilkit.tasks.metrics import (
    accuracy,
    answer_exact_match,
    answer_f1,
    binary_f1,
    entity_scores,
    extract_entities,
    glue_metrics,
    macro_f1,
    matthews_corrcoef,
    mean_squared_error,
    normalize_answer,
    pearson,
    rankdata,
    spearman,
    squad_metrics,
)
from distilkit.tasks.registry import task_spec


def test_accuracy():
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_accuracy_rejects_length_mismatch():
    with pytest.raises(ValueError, match="3 and 2"):
        accuracy([1, 0, 1], [1, 0])


def test_binary_f1_positive_class_one():
    # TP = 2 (positions 0, 4), FP = 1 (position 1), FN = 1 (position 2): F1 = 2·2 / (2·2 + 1 + 1) = 2/3
    assert binary_f1([1, 1, 0, 0, 1], [1, 0, 1, 0, 1]) == pytest.approx(2 / 3)


def test_binary_f1_is_zero_without_positives():
    assert binary_f1([0, 0, 0], [0, 0, 0]) == 0.0


def test_macro_f1_by_hand():
    # per-class F1 = 2·TP / (2·TP + FP + FN): class 0: 2/4, class 1: 4/5, class 2: 2/3 → mean 59/90
    assert macro_f1([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2]) == pytest.approx(59 / 90)
    # a class only predicted counts with F1 0: class 0: 2/3, class 3: 0 → 1/3
    assert macro_f1([0, 3], [0, 0]) == pytest.approx(1 / 3)


def test_mean_squared_error_by_hand():
    assert mean_squared_error([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert math.isnan(mean_squared_error([float("nan"), 2.0], [1.0, 2.0]))  # a diverged regressor: nan, no error


def test_matthews_binary_by_hand():
    # TP = 3, TN = 4, FP = 1, FN = 2:
    # MCC = (3·4 − 1·2) / √((3+1)(3+2)(4+1)(4+2)) = 10 / √600
    gold = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    predicted = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert matthews_corrcoef(predicted, gold) == pytest.approx(10 / math.sqrt(600))


def test_matthews_multiclass_by_hand():
    # Confusion (rows gold, columns predicted): [[1,1,0],[0,2,0],[1,0,1]]; t = (2,2,2), p = (2,3,1), c = 4, s = 6
    # MCC = (4·6 − (4+6+2)) / √((36 − (4+9+1)) · (36 − 12)) = 12 / √(22·24)
    gold = [0, 0, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 2, 0]
    assert matthews_corrcoef(predicted, gold) == pytest.approx(12 / math.sqrt(22 * 24))


def test_matthews_extremes_and_undefined():
    assert matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # constant prediction: undefined → 0


def test_pearson_by_hand():
    # x − x̄ = (−1, 0, 1), y − ȳ = (−5/3, −2/3, 7/3): r = 4 / √(2 · 78/9)
    assert pearson([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / math.sqrt(2 * 78 / 9))
    assert pearson([2, 2, 2], [1, 2, 3]) == 0.0
    assert pearson([0.1, 0.1, 0.1], [1, 2, 3]) == 0.0  # constant, though the float mean is not exactly 0.1
    assert pearson([1.0], [2.0]) == 0.0  # one pair: undefined


def test_rankdata_averages_ties():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(rankdata([3, 1, 3, 3]), [3, 1, 3, 3])  # ranks 2, 3, 4 share 3


def test_spearman_with_ties_by_hand():
    # ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4); centred: (−1.5, 0, 0, 1.5) and (−1.5, .5, −.5, 1.5)
    # ρ = 4.5 / √(4.5 · 5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman([1, 2, 3, 4], [10, 20, 35, 1000]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([5, 5, 5], [1, 2, 3]) == 0.0  # constant: undefined → 0
    assert spearman([1.0], [2.0]) == 0.0


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The  Cat!", "cat"),
        ("an Apple, a day", "apple day"),
        ("theater", "theater"),  # articles only as whole words
        ("  Denver   Broncos. ", "denver broncos"),
    ],
)
def test_normalize_answer(text, normalised):
    assert normalize_answer(text) == normalised


def test_answer_exact_match_takes_the_best_gold():
    assert answer_exact_match("The Cat", ["dog", "cat"]) == 1.0
    assert answer_exact_match("cat sat", ["cat"]) == 0.0


def test_answer_f1_token_overlap():
    # "big red cat" vs "red cat sat": 2 common tokens, precision = recall = 2/3 → F1 = 2/3 ("the" is dropped)
    assert answer_f1("the big red cat", ["red cat sat"]) == pytest.approx(2 / 3)
    assert answer_f1("the big red cat", ["red cat sat", "big red cat"]) == 1.0
    assert answer_f1("dog", ["cat"]) == 0.0


def test_squad_metrics_counts_missing_predictions_as_zero():
    references = {"q1": ["Denver Broncos"], "q2": ["Santa Clara"], "q3": ["gold"]}
    predictions = {"q1": "the Denver Broncos", "q2": "Santa Clara, California"}
    # q1: EM 1, F1 1; q2: EM 0, F1 = 2·(2/3·1)/(2/3+1) = 0.8; q3 missing: 0 — averaged ×100
    scores = squad_metrics(predictions, references)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * 1.8 / 3)


def test_extract_entities_conlleval_rules():
    assert extract_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert extract_entities(["O", "I-PER", "I-PER"]) == [("PER", 1, 2)]  # stray I- starts an entity
    assert extract_entities(["I-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # type change splits
    assert extract_entities(["I-PER", "B-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]  # IOB1 adjacent entities
    with pytest.raises(ValueError, match="PER"):
        extract_entities(["PER"])


def test_entity_scores_iob2_boundary_error():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG"]]
    predicted = [["B-PER", "O", "O", "B-LOC", "O", "B-ORG", "I-ORG"]]
    # gold PER(0,1) LOC(3) ORG(5,6); predicted PER(0,0) LOC(3) ORG(5,6): 2 of 3 correct each way
    scores = entity_scores(gold, predicted)
    assert scores == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


def test_entity_scores_iob1():
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]  # PER(0,1) PER(2,2) LOC(4,4)
    predicted = [["I-PER", "I-PER", "I-PER", "O", "I-LOC"]]  # PER(0,2) LOC(4,4)
    # correct: LOC only → P = 1/2, R = 1/3, F1 = 2·(1/6)/(5/6) = 0.4
    scores = entity_scores(gold, predicted)
    assert scores == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4})


def test_entity_scores_iobes():
    gold = [["S-PER", "O", "B-LOC", "E-LOC", "B-ORG", "I-ORG", "E-ORG"]]  # PER(0) LOC(2,3) ORG(4,6)
    predicted = [["S-PER", "O", "B-LOC", "E-LOC", "S-ORG", "B-ORG", "E-ORG"]]  # PER(0) LOC(2,3) ORG(4) ORG(5,6)
    # correct: PER, LOC → P = 2/4, R = 2/3, F1 = 2·(1/3)/(7/6) = 4/7
    scores = entity_scores(gold, predicted)
    assert scores == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7})


def test_entity_scores_are_per_sentence_and_zero_when_undefined():
    # the same span in different sentences is a different entity
    assert entity_scores([["B-PER"], ["O"]], [["O"], ["B-PER"]])["f1"] == 0.0
    assert entity_scores([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])
    assert entity_scores([], []) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_scores([[]], [[]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_scores([("B-PER", "I-PER")], [("B-PER", "I-PER")])["f1"] == 1.0  # tuples work as lists
    with pytest.raises(ValueError, match="'PER'"):  # seqeval alone would read "PER" as an entity tag
        entity_scores([["PER"]], [["O"]])


def test_glue_metrics_from_logits_and_scores():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert glue_metrics(task_spec("sst-2"), logits, [1, 0, 0, 0]) == {"accuracy": 0.75}
    mrpc = glue_metrics(task_spec("mrpc"), [1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert mrpc == pytest.approx({"f1": 2 / 3, "accuracy": 0.6})
    stsb = glue_metrics(task_spec("stsb"), np.array([[1.0], [2.0], [3.0]]), [1.0, 2.0, 5.0])
    assert stsb == pytest.approx({"pearson": 4 / math.sqrt(2 * 78 / 9), "spearman": 1.0})
    assert set(glue_metrics(task_spec("cola"), [0, 1], [0, 1])) == {"matthews"}


# ---------------------------------------------------------------------------------------------
# Agreement with the libraries on random inputs
# ---------------------------------------------------------------------------------------------

SEEDS = range(5)


def _random_classes(rng, num_classes):
    size = int(rng.integers(2, 60))
    return rng.integers(0, num_classes, size), rng.integers(0, num_classes, size)


def _random_scores(rng):
    size = int(rng.integers(3, 60))
    gold = rng.normal(size=size)
    tied = np.round(gold + rng.normal(scale=0.5, size=size))  # integer-valued: plenty of ties for the ranks
    return (tied if rng.random() < 0.5 else gold + rng.normal(size=size)), gold


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_metrics_agree_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    predicted, gold = _random_classes(rng, 2)
    assert accuracy(predicted, gold) == pytest.approx(sklearn_metrics.accuracy_score(gold, predicted))
    assert binary_f1(predicted, gold) == pytest.approx(sklearn_metrics.f1_score(gold, predicted))
    assert matthews_corrcoef(predicted, gold) == pytest.approx(sklearn_metrics.matthews_corrcoef(gold, predicted))
    predicted, gold = _random_classes(rng, 5)
    assert macro_f1(predicted, gold) == pytest.approx(sklearn_metrics.f1_score(gold, predicted, average="macro"))
    assert matthews_corrcoef(predicted, gold) == pytest.approx(sklearn_metrics.matthews_corrcoef(gold, predicted))
    assert accuracy(predicted, gold) == pytest.approx(sklearn_metrics.accuracy_score(gold, predicted))


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_agree_with_scipy_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    predicted, gold = _random_scores(rng)
    assert pearson(predicted, gold) == pytest.approx(stats.pearsonr(predicted, gold)[0])
    assert spearman(predicted, gold) == pytest.approx(stats.spearmanr(predicted, gold)[0])
    np.testing.assert_allclose(rankdata(predicted), stats.rankdata(predicted))
    # and the definitions, independently of scipy: Pearson's r, and Pearson's r of the average ranks
    assert pearson(predicted, gold) == pytest.approx(np.corrcoef(predicted, gold)[0, 1])
    assert spearman(predicted, gold) == pytest.approx(np.corrcoef(rankdata(predicted), rankdata(gold))[0, 1])
    expected = sklearn_metrics.mean_squared_error(gold, predicted)
    assert mean_squared_error(predicted, gold) == pytest.approx(expected)


def _random_tags(rng, size):
    """A mix of IOB1, IOB2 and IOBES prefixes, stray I-/E- tags and type changes: every conlleval rule is used."""
    prefixes, types = rng.choice(["B", "I", "E", "S"], size), rng.choice(["PER", "LOC"], size)
    return [f"{prefix}-{kind}" if rng.random() < 0.6 else "O" for prefix, kind in zip(prefixes, types, strict=True)]


@pytest.mark.parametrize("seed", SEEDS)
def test_entity_scores_agree_with_seqeval_and_conlleval_counting(seed):
    rng = np.random.default_rng(seed)
    gold = [_random_tags(rng, int(rng.integers(0, 12))) for _ in range(20)]
    # mostly right, as a trained tagger is
    predicted = [[tag if rng.random() < 0.7 else _random_tags(rng, 1)[0] for tag in tags] for tags in gold]
    scores = entity_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(seqeval_metrics.precision_score(gold, predicted))
    assert scores["recall"] == pytest.approx(seqeval_metrics.recall_score(gold, predicted))
    assert scores["f1"] == pytest.approx(seqeval_metrics.f1_score(gold, predicted))
    # conlleval counting: an entity is (sentence, type, first, last), decoded by extract_entities
    gold_entities = {(index, *entity) for index, tags in enumerate(gold) for entity in extract_entities(tags)}
    predicted_entities = {(index, *entity) for index, tags in enumerate(predicted) for entity in extract_entities(tags)}
    correct = len(gold_entities & predicted_entities)
    assert scores["precision"] == pytest.approx(correct / len(predicted_entities))
    assert scores["recall"] == pytest.approx(correct / len(gold_entities))
