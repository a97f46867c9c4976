"""Token tags on any scheme (#18): detection of IOB1, IOB2, BIOES and plain tags, mixed schemes refused with one
line naming both places, forced schemes checked tag by tag, and the metrics of each scheme against seqeval and
scikit-learn on hand-made tags."""

from __future__ import annotations

import pytest
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.scheme import IOBES
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as sklearn_f1

from distilkit.errors import DataError
from distilkit.tasks.metrics import entity_scores, tag_metrics, word_scores
from distilkit.tasks.readers.schemes import resolve_scheme, scheme_of_labels
from distilkit.tasks.registry import task_spec


def detect(*sentences: list[str]) -> str:
    return resolve_scheme(((tags, f"line {i + 1}") for i, tags in enumerate(sentences)), None, "train.txt")


@pytest.mark.parametrize(
    ("sentences", "scheme"),
    [
        ([["I-PER", "I-PER", "O", "I-LOC"], ["I-ORG", "B-ORG", "O"]], "iob1"),  # CoNLL-2003: B- only splits
        ([["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-ORG"]], "iob2"),
        ([["B-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "I-ORG", "E-ORG"]], "bioes"),
        ([["NNP", "VBZ", "JJ"], ["DT", "NN", "."]], "plain"),
        ([["O", "X", "O"], ["Y"]], "plain"),  # an "O" among plain tags is one more tag
        # entities opened by I- and by B-: the majority (conlleval reads both openings as starts)
        ([["I-PER", "O", "I-LOC"], ["O", "B-LOC"]], "iob1"),
        ([["B-PER", "O", "B-LOC"], ["I-ORG"]], "iob2"),
    ],
)  # fmt: skip
def test_each_scheme_is_detected(sentences, scheme):
    assert detect(*sentences) == scheme


@pytest.mark.parametrize(
    ("sentences", "fragments"),
    [
        ([["B-PER", "O"], ["NNP", "O"]], ["train.txt, line 2: 'NNP' is a plain tag but line 1 has 'B-PER'"]),
        ([["S-PER", "O"], ["I-LOC", "O"]], ["line 2: 'I-LOC' opens an entity (IOB1)", "'S-PER' (BIOES)"]),
        ([["B-PER", "E-PER"], ["B-LOC", "O"]], ["line 2: 'B-LOC' ends an entity without E- (IOB)"]),
    ],
)  # fmt: skip
def test_mixed_schemes_are_one_line_errors(sentences, fragments):
    with pytest.raises(DataError) as error:
        detect(*sentences)
    message = str(error.value)
    assert "\n" not in message and "mixed tag schemes" in message and "--tag-scheme" in message
    for fragment in fragments:
        assert fragment in message


def test_a_forced_scheme_checks_each_tag_and_skips_detection():
    mixed = [(["I-PER", "O"], "line 1"), (["B-LOC", "O"], "line 2")]
    assert resolve_scheme(mixed, "iob2", "f") == "iob2"  # IOB1 and IOB2 openings together: fine when forced
    assert resolve_scheme([(["B-NP", "NNP"], "line 1")], "plain", "f") == "plain"  # any tag is a plain tag
    with pytest.raises(DataError, match=r"f, line 1: 'NNP' is not an IOB2 tag \(O, B-X or I-X\)"):
        resolve_scheme([(["B-NP", "NNP"], "line 1")], "iob2", "f")
    with pytest.raises(DataError, match="'S-PER' is not an IOB1 tag"):
        resolve_scheme([(["S-PER"], "line 1")], "iob1", "f")
    assert resolve_scheme([(["S-PER", "B-X", "E-X"], "line 1")], "bioes", "f") == "bioes"


def test_scheme_of_a_models_labels():
    assert scheme_of_labels(["O", "B-PER", "I-PER"]) == "iob2"
    assert scheme_of_labels(["O", "S-PER", "B-PER", "E-PER"]) == "bioes"
    assert scheme_of_labels(["NN", "VB", "O"]) == "plain" and scheme_of_labels(["LABEL_0", "LABEL_1"]) == "plain"


# Hand-made gold and predicted tags per scheme; the expected values are those of seqeval / scikit-learn.
IOB1_GOLD = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["O", "I-ORG", "I-ORG"]]
IOB1_PRED = [["I-PER", "I-PER", "I-PER", "O", "I-LOC"], ["O", "I-ORG", "O"]]
IOB2_GOLD = [["B-PER", "I-PER", "B-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"]]
IOB2_PRED = [["B-PER", "I-PER", "I-PER", "O", "B-LOC"], ["O", "I-ORG", "I-ORG"]]
BIOES_GOLD = [["B-PER", "E-PER", "S-PER", "O", "S-LOC"], ["O", "B-ORG", "E-ORG"]]
BIOES_PRED = [["B-PER", "I-PER", "S-PER", "O", "S-LOC"], ["O", "B-ORG", "E-ORG"]]


def test_iob_span_scores_count_as_conlleval_does():
    # IOB1: PER(0-1) PER(2) LOC ORG gold; predicted PER(0-2) LOC ORG(1): 1 of 3 right, 1 of 4 found
    scores = tag_metrics(task_spec("token-classification").with_scheme("iob1"), IOB1_GOLD, IOB1_PRED)
    assert scores == pytest.approx({"precision": 1 / 3, "recall": 1 / 4, "f1": 2 / 7})
    assert scores["f1"] == pytest.approx(seqeval_f1(IOB1_GOLD, IOB1_PRED))
    # IOB2, conlleval counting: the stray I-ORG opens ORG(1-2), as conlleval reads it → right
    scores = tag_metrics(task_spec("chunk"), IOB2_GOLD, IOB2_PRED)
    assert scores["precision"] == pytest.approx(seqeval_precision(IOB2_GOLD, IOB2_PRED)) == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(seqeval_f1(IOB2_GOLD, IOB2_PRED)) == pytest.approx(4 / 7)


def test_bioes_span_scores_are_seqeval_strict():
    # the ill-formed B-PER I-PER is no span in strict IOBES (conlleval would read it as PER(0-1), correct)
    scores = tag_metrics(task_spec("token-classification").with_scheme("bioes"), BIOES_GOLD, BIOES_PRED)
    assert scores["f1"] == pytest.approx(seqeval_f1(BIOES_GOLD, BIOES_PRED, mode="strict", scheme=IOBES))
    assert scores == pytest.approx({"precision": 1.0, "recall": 0.75, "f1": 6 / 7})
    assert entity_scores(BIOES_GOLD, BIOES_PRED)["f1"] == pytest.approx(1.0)  # the lenient count differs


POS_GOLD = [["DT", "NN", "VBZ", "."], ["NNP", "VBD", "."]]
POS_PRED = [["DT", "NN", "NN", "."], ["NNP", "VBD", "VBD"]]


def test_plain_tags_are_scored_per_word_with_sklearn():
    gold = [tag for tags in POS_GOLD for tag in tags]
    predicted = [tag for tags in POS_PRED for tag in tags]
    scores = tag_metrics(task_spec("pos"), POS_GOLD, POS_PRED)
    assert scores["accuracy"] == pytest.approx(accuracy_score(gold, predicted)) == pytest.approx(5 / 7)
    assert scores["macro_f1"] == pytest.approx(sklearn_f1(gold, predicted, average="macro", zero_division=0))
    # DT 1, NN 2/3, VBZ 0, . 2/3, NNP 1, VBD 2/3 → mean 4/6
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 2 / 3 + 1 + 2 / 3) / 6)


def test_word_scores_leave_the_truncation_fill_out_of_the_macro_mean():
    # a word cut by truncation is predicted "O", which is no POS tag: a miss, not a class of the mean
    labels = ["DT", "NN"]
    scores = word_scores([["DT", "NN"]], [["DT", "O"]], labels)
    assert scores == pytest.approx({"accuracy": 0.5, "macro_f1": 0.5})  # DT 1, NN 0
    assert word_scores([], []) == {"accuracy": 0.0, "macro_f1": 0.0}
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        word_scores([["DT", "NN"]], [["DT"]])
