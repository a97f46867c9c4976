"""Task metrics — the one place each GLUE, SQuAD and token-tagging score distilkit reports is computed.

GLUE scores come from scikit-learn and scipy.stats; token tags are scored by their scheme (`tag_metrics`): span F1
from seqeval (conlleval-compatible default mode for IOB1/IOB2, strict IOBES mode for BIOES), word accuracy and
macro-F1 from scikit-learn for plain tags (parts of speech);
SQuAD EM/F1 are a transcription of the official v1.1 evaluation script, which is itself the reference.

Scales follow each benchmark's reference implementation: GLUE metrics and entity F1 are fractions
(accuracy/F1 in [0, 1], correlations in [-1, 1], as sklearn/scipy/seqeval return them); SQuAD EM/F1
are percentages in [0, 100], as the official v1.1 evaluation script prints them. Which metrics a task reports,
and which average into its headline score, is its record's (tasks/registry.py: `TaskSpec.main_score`).
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from distilkit.tasks.registry import TaskSpec

logger = logging.getLogger(__name__)


def glue_metrics(spec: TaskSpec, predictions: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """Every metric `spec.metrics` lists for a GLUE task (or own-data classification / regression), by name.

    predictions: (n,) class ids, or (n, num_labels) logits (argmax is taken); for STS-B and regression (n,) or
    (n, 1) scores. labels: (n,) gold class ids (floats for STS-B and regression)."""
    if spec.kind not in ("classification", "regression"):
        raise ValueError(f"{spec.name} is not a GLUE task: use squad_metrics / entity_scores")
    predicted = np.asarray(predictions)
    if spec.kind == "regression":
        predicted = predicted.reshape(len(predicted), -1)[:, 0] if predicted.ndim == 2 else predicted
    elif predicted.ndim == 2:
        predicted = predicted.argmax(axis=-1)
    functions = {
        "accuracy": accuracy,
        "f1": binary_f1,
        "matthews": matthews_corrcoef,
        "pearson": pearson,
        "spearman": spearman,
        "macro_f1": macro_f1,
        "mse": mean_squared_error,
    }
    return {name: functions[name](predicted, labels) for name in spec.metrics}


# ---------------------------------------------------------------------------------------------
# Classification and regression (GLUE): scikit-learn and scipy.stats
# (imported where used: they take about a second to import)
# ---------------------------------------------------------------------------------------------


def _paired(predictions: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    predicted, gold = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    if predicted.shape != gold.shape or predicted.size == 0:
        raise ValueError(f"need equally many predictions and labels, got {predicted.size} and {gold.size}")
    return predicted, gold


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of positions where prediction == label (sklearn `accuracy_score`). predictions, labels: (n,) ids."""
    from sklearn.metrics import accuracy_score

    predicted, gold = _paired(predictions, labels)
    return float(accuracy_score(gold, predicted))


def binary_f1(predictions: ArrayLike, labels: ArrayLike) -> float:
    """F1 of the positive class 1: 2·TP / (2·TP + FP + FN); 0 when there is no positive anywhere
    (sklearn `f1_score(average="binary")` with zero_division=0). predictions, labels: (n,) ids in {0, 1}."""
    from sklearn.metrics import f1_score

    predicted, gold = _paired(predictions, labels)
    return float(f1_score(gold, predicted, average="binary", pos_label=1, zero_division=0))


def macro_f1(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Unweighted mean over classes of each class's F1 (2·TP / (2·TP + FP + FN)), over the classes present in
    the labels or the predictions — sklearn `f1_score(average="macro")`. predictions, labels: (n,) class ids."""
    from sklearn.metrics import f1_score

    predicted, gold = _paired(predictions, labels)
    return float(f1_score(gold, predicted, average="macro", zero_division=0))


def mean_squared_error(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Mean of (prediction − label)² over (n,) real vectors (sklearn `mean_squared_error`; lower is better,
    not a main score)."""
    from sklearn import metrics

    predicted, gold = _paired(predictions, labels)
    predicted, gold = predicted.astype(np.float64), gold.astype(np.float64)
    if not (np.isfinite(predicted).all() and np.isfinite(gold).all()):
        return float("nan")  # a diverged regressor: sklearn refuses nan/inf, pearson/spearman give nan too
    return float(metrics.mean_squared_error(gold, predicted))


def matthews_corrcoef(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Matthews correlation, sklearn `matthews_corrcoef` (multiclass definition of Gorodkin 2004; the usual
    (TP·TN − FP·FN)/√(…) for two classes). With confusion matrix C (rows gold, columns predicted),
    t = row sums, p = column sums, c = trace, s = total:
        MCC = (c·s − t·p) / √((s² − p·p)(s² − t·t)),
    and 0 when the denominator is 0 (e.g. a constant prediction). predictions, labels: (n,) class ids."""
    from sklearn import metrics

    predicted, gold = _paired(predictions, labels)
    if len(np.unique(predicted)) < 2 or len(np.unique(gold)) < 2:
        return 0.0  # undefined: one side is constant (sklearn gives 0 too, but warns on a single label)
    return float(metrics.matthews_corrcoef(gold, predicted))


def _constant(values: np.ndarray) -> bool:
    return bool(np.all(values == values[0]))


def pearson(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Pearson correlation of two (n,) real vectors (scipy.stats.pearsonr); 0 when either is constant or n = 1
    (undefined, scipy gives nan or raises — a constant regressor carries no correlation, and 0 keeps averages
    finite)."""
    from scipy.stats import pearsonr

    predicted, gold = _paired(predictions, labels)
    if _constant(predicted) or _constant(gold):
        return 0.0
    return float(pearsonr(predicted.astype(np.float64), gold.astype(np.float64))[0])


def rankdata(values: ArrayLike) -> np.ndarray:
    """1-based ranks of a (n,) vector; tied values share the mean of their ranks (scipy.stats.rankdata,
    "average" method): rankdata([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]."""
    from scipy import stats

    return stats.rankdata(np.asarray(values, dtype=np.float64).ravel(), method="average").astype(np.float64)


def spearman(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Spearman rank correlation (scipy.stats.spearmanr): Pearson of the average ranks (ties share a rank).
    predictions, labels: (n,) real vectors; 0 when either is constant or n = 1."""
    from scipy.stats import spearmanr

    predicted, gold = _paired(predictions, labels)
    if _constant(predicted) or _constant(gold):
        return 0.0
    return float(spearmanr(predicted.astype(np.float64), gold.astype(np.float64))[0])


# ---------------------------------------------------------------------------------------------
# SQuAD v1.1 (official evaluate-v1.1.py)
# ---------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, drop ASCII punctuation, drop the articles a/an/the,
    collapse whitespace — in the official script's order. "The  Cat!" → "cat"."""
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def _token_f1(prediction: str, gold: str) -> float:
    predicted_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    overlap = sum((Counter(predicted_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def answer_exact_match(prediction: str, gold_answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    if not gold_answers:
        raise ValueError("gold_answers is empty")
    return max(float(normalize_answer(prediction) == normalize_answer(gold)) for gold in gold_answers)


def answer_f1(prediction: str, gold_answers: Sequence[str]) -> float:
    """Best bag-of-tokens F1 of the normalised prediction against any gold answer, in [0, 1]."""
    if not gold_answers:
        raise ValueError("gold_answers is empty")
    return max(_token_f1(prediction, gold) for gold in gold_answers)


def squad_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Official SQuAD v1.1 scores: {"exact_match", "f1"} in [0, 100], averaged over every question in
    `references` (id → gold answer texts). A question without a prediction scores 0, as in the official
    script (logged as a warning); predictions for ids not in `references` are ignored."""
    if not references:
        raise ValueError("references is empty")
    missing = [question_id for question_id in references if question_id not in predictions]
    if missing:
        logger.warning("%d of %d questions have no prediction and score 0", len(missing), len(references))
    exact = f1 = 0.0
    for question_id, gold_answers in references.items():
        if question_id in predictions:
            exact += answer_exact_match(predictions[question_id], gold_answers)
            f1 += answer_f1(predictions[question_id], gold_answers)
    return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}


# ---------------------------------------------------------------------------------------------
# Token tags: span F1 (seqeval; default mode = conlleval) and word scores of plain tags (scikit-learn)
# ---------------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, _, entity_type = tag.partition("-")
    if prefix not in ("B", "I", "E", "S") or not entity_type:
        raise ValueError(f"tag {tag!r} is not O or <B|I|E|S>-<TYPE>")
    return prefix, entity_type


def _ends_entity(previous: str, current: str, previous_type: str, current_type: str) -> bool:
    if previous in ("E", "S"):
        return True
    if previous in ("B", "I") and current in ("B", "S", "O"):
        return True
    return previous != "O" and previous_type != current_type


def _starts_entity(previous: str, current: str, previous_type: str, current_type: str) -> bool:
    if current in ("B", "S"):
        return True
    if previous in ("E", "S", "O") and current in ("I", "E"):
        return True
    return current != "O" and previous_type != current_type


def extract_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities of one sentence as (type, first, last) word indices (last inclusive), conlleval's rules:
    an entity starts at B-/S-, or at an I-/E- that follows O, E-, S- or a different type; it ends before
    O, B-, S- or a type change. So IOB1 ("I-PER I-PER B-PER") and IOB2 ("B-PER I-PER") both decode, and
    a stray I- tag starts a new entity. Raises ValueError on a tag that is not O or X-TYPE."""
    entities: list[tuple[str, int, int]] = []
    previous, previous_type, start = "O", "", 0
    for position, tag in enumerate([*tags, "O"]):  # the trailing O closes a final entity
        current, current_type = _split_tag(tag)
        if _ends_entity(previous, current, previous_type, current_type):
            entities.append((previous_type, start, position - 1))
        if _starts_entity(previous, current, previous_type, current_type):
            start = position
        previous, previous_type = current, current_type
    return entities


def _paired_sentences(gold_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]) -> tuple[list, list]:
    if len(gold_tags) != len(predicted_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(predicted_tags)} predicted")
    gold_lists, predicted_lists = [list(tags) for tags in gold_tags], [list(tags) for tags in predicted_tags]
    for index, (gold, predicted) in enumerate(zip(gold_lists, predicted_lists, strict=True)):
        if len(gold) != len(predicted):
            raise ValueError(f"sentence {index}: {len(gold)} gold tags but {len(predicted)} predicted")
    return gold_lists, predicted_lists


def entity_scores(
    gold_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]], scheme: str | None = None
) -> dict[str, float]:
    """Micro-averaged entity-level {"precision", "recall", "f1"} in [0, 1] over sentences: seqeval's
    precision_score / recall_score / f1_score. IOB1, IOB2 (and None): the default mode, which decodes entities as
    conlleval does (the rules of `extract_entities`), as the CoNLL shared tasks score; BIOES: strict mode with
    seqeval's IOBES scheme, where only a well-formed B-…E- or S- span counts. An entity counts as correct only when
    its type, start and end all match. gold_tags, predicted_tags: one tag sequence per sentence, equal lengths
    pairwise. Each score is 0 when undefined. Raises ValueError on a length mismatch or a tag that is not O or
    X-TYPE."""
    from seqeval import metrics

    gold_lists, predicted_lists = _paired_sentences(gold_tags, predicted_tags)
    for tag in (tag for tags in (*gold_lists, *predicted_lists) for tag in tags):
        _split_tag(tag)  # seqeval would read a malformed tag ("PER") as some entity instead of failing
    if not any(gold_lists):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # nothing to score (seqeval needs one tag)
    mode: dict = {}
    if scheme == "bioes":
        from seqeval.scheme import IOBES

        mode = {"mode": "strict", "scheme": IOBES}
    return {
        "precision": float(metrics.precision_score(gold_lists, predicted_lists, zero_division=0, **mode)),
        "recall": float(metrics.recall_score(gold_lists, predicted_lists, zero_division=0, **mode)),
        "f1": float(metrics.f1_score(gold_lists, predicted_lists, zero_division=0, **mode)),
    }


def word_scores(
    gold_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]], labels: Sequence[str] | None = None
) -> dict[str, float]:
    """Plain tags (parts of speech, ...) scored per word over all sentences: {"accuracy": the fraction of words
    whose tag is right (sklearn accuracy_score), "macro_f1": the unweighted mean of each tag's F1 (sklearn
    f1_score(average="macro"), zero_division=0) over the tags in the gold or predicted words}. labels: the model's
    tags; a predicted tag outside them (the "O" of a word cut by truncation) is a miss, not a class of the mean.
    Both 0 with no word. Raises ValueError on a length mismatch."""
    from sklearn.metrics import accuracy_score, f1_score

    gold_lists, predicted_lists = _paired_sentences(gold_tags, predicted_tags)
    gold = [tag for tags in gold_lists for tag in tags]
    predicted = [tag for tags in predicted_lists for tag in tags]
    if not gold:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    classes = sorted(set(gold) | set(predicted))
    if labels is not None:
        classes = [tag for tag in classes if tag in set(labels) or tag in set(gold)]
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=classes, average="macro", zero_division=0)),
    }


def tag_metrics(
    spec: TaskSpec, gold_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict[str, float]:
    """The scores of a token task, by its tag scheme: `word_scores` for plain tags, else `entity_scores`."""
    if spec.tag_scheme == "plain":
        return word_scores(gold_tags, predicted_tags, spec.labels or None)
    return entity_scores(gold_tags, predicted_tags, spec.tag_scheme)
