"""CoNLL reader, sub-token label alignment, and mapping token predictions back to word tags."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from distilkit.errors import DataError
from distilkit.tasks.features import IGNORE_INDEX, align_labels
from distilkit.tasks.metrics import entity_scores, extract_entities
from distilkit.tasks.predict import predictions_to_tags
from distilkit.tasks.readers.ner import NerSentence, build_label_list, read_conll, to_iob2

CONLL = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Denver NNP I-NP I-LOC
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_conll(tmp_path):
    sentences = read_conll(write(tmp_path, CONLL))
    assert sentences == [
        NerSentence(("EU", "rejects", "German"), ("I-ORG", "O", "I-MISC")),
        NerSentence(("Peter", "Blackburn"), ("I-PER", "I-PER")),
        NerSentence(("Denver",), ("I-LOC",)),
    ]


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = write(tmp_path, CONLL.replace("rejects VBZ I-VP O", "rejects VBZ O"))
    with pytest.raises(DataError, match=r"train\.txt, line 4: expected 4 space-separated columns .* got 3"):
        read_conll(path)


def test_any_tag_column_is_read_and_empty_and_missing_files_fail(tmp_path):
    # #18: a POS column is read like any other; its scheme is checked by readers/schemes.py, not here
    path = write(tmp_path, CONLL)
    assert read_conll(path, tag_column=1)[0] == NerSentence(("EU", "rejects", "German"), ("NNP", "VBZ", "JJ"))
    assert read_conll(path, tag_column=2)[1].tags == ("I-NP", "I-NP")
    with pytest.raises(DataError, match=r"line 3: no tag column 4 — the file has 4 columns: 0 \(the word\) to 3"):
        read_conll(path, tag_column=4)
    with pytest.raises(DataError, match="no tag column 0"):
        read_conll(path, tag_column=0)
    with pytest.raises(DataError, match="holds no sentences"):
        read_conll(write(tmp_path, "-DOCSTART- -X- O O\n\n"))
    with pytest.raises(DataError, match="does not exist"):
        read_conll(tmp_path / "missing.txt")


def test_label_list_is_o_first_then_sorted(tmp_path):
    sentences = read_conll(write(tmp_path, CONLL))
    types = ["LOC", "MISC", "ORG", "PER"]  # each span type completed with the scheme's prefixes
    assert build_label_list(sentences) == ["O"] + [f"B-{t}" for t in types] + [f"I-{t}" for t in types]


def test_label_list_completes_each_span_type_with_its_schemes_prefixes():
    """A chunk shape the training split lacks (a two-word PRT chunk: I-PRT only in dev) is still a label."""
    iob2 = [NerSentence(("up",), ("B-PRT",)), NerSentence(("a", "b"), ("B-NP", "I-NP"))]
    assert build_label_list(iob2) == ["B-NP", "B-PRT", "I-NP", "I-PRT"]
    bioes = [NerSentence(("x", "y"), ("S-PER", "O"))]
    assert build_label_list(bioes) == ["O", "B-PER", "E-PER", "I-PER", "S-PER"]
    plain = [NerSentence(("the", "cat"), ("DT", "NN")), NerSentence(("(",), ("-LRB-",))]
    assert build_label_list(plain) == ["-LRB-", "DT", "NN"]


def test_to_iob2():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    assert to_iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    assert to_iob2(["B-PER", "I-PER"]) == ["B-PER", "I-PER"]


SENTENCES = [
    NerSentence(("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC")),
    NerSentence(("Peter", "Blackburn"), ("B-PER", "I-PER")),
]
LABELS = ["O", "B-MISC", "B-ORG", "B-PER", "I-MISC", "I-ORG", "I-PER"]
LABEL_TO_ID = {label: index for index, label in enumerate(LABELS)}


def test_align_labels_first_subtoken(task_tokenizer):
    features = align_labels(SENTENCES, task_tokenizer, LABEL_TO_ID, max_len=64)
    tokens = task_tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    # "eu" is a vocabulary word; "rejects" and "german" fall apart into characters
    assert tokens[:5] == ["[CLS]", "eu", "r", "##e", "##j"]
    labels = features["labels"][0]
    assert len(labels) == len(tokens) == len(features["word_ids"][0])
    assert labels[0] == labels[-1] == IGNORE_INDEX  # [CLS], [SEP]
    assert labels[1] == LABEL_TO_ID["B-ORG"]
    assert labels[2] == LABEL_TO_ID["O"] and set(labels[3:9]) == {IGNORE_INDEX}  # r + ##e##j##e##c##t##s
    assert labels[9] == LABEL_TO_ID["B-MISC"] and set(labels[10:-1]) == {IGNORE_INDEX}
    assert features["word_ids"][0][:4] == [None, 0, 1, 1]
    assert set(features) == {"input_ids", "attention_mask", "token_type_ids", "labels", "word_ids"}


def test_align_labels_all_subwords_uses_inside_tag(task_tokenizer):
    features = align_labels(SENTENCES, task_tokenizer, LABEL_TO_ID, max_len=64, label_all_subwords=True)
    labels, word_ids = features["labels"][0], features["word_ids"][0]
    german = [label for label, word in zip(labels, word_ids, strict=True) if word == 2]
    assert german == [LABEL_TO_ID["B-MISC"]] + [LABEL_TO_ID["I-MISC"]] * 5  # g ##e ##r ##m ##a ##n
    assert labels[0] == labels[-1] == IGNORE_INDEX


def test_align_labels_unknown_tag(task_tokenizer):
    with pytest.raises(DataError, match="tag 'B-PER' is not in the label list"):
        align_labels(SENTENCES, task_tokenizer, {"O": 0, "B-ORG": 1, "B-MISC": 2, "I-PER": 3}, max_len=64)


def test_predictions_to_tags_round_trip(task_tokenizer):
    features = align_labels(SENTENCES, task_tokenizer, LABEL_TO_ID, max_len=64)
    # predict the gold label at every labelled position, garbage (label 1) elsewhere, and pad the rows
    predictions = [[1 if label == IGNORE_INDEX else label for label in row] + [1, 1] for row in features["labels"]]
    num_words = [len(sentence.words) for sentence in SENTENCES]
    tags = predictions_to_tags(predictions, features["word_ids"], LABELS, num_words)
    assert tags == [list(sentence.tags) for sentence in SENTENCES]
    logits = [np.eye(len(LABELS))[row] for row in predictions]  # (seq_len, num_labels) one-hot
    assert predictions_to_tags(logits, features["word_ids"], LABELS, num_words) == tags


def test_truncated_words_are_predicted_o(task_tokenizer):
    features = align_labels(SENTENCES, task_tokenizer, LABEL_TO_ID, max_len=6)  # [CLS] eu r ##e ##j [SEP]
    assert features["word_ids"][0] == [None, 0, 1, 1, 1, None]
    predictions = [[0 if label == IGNORE_INDEX else label for label in row] for row in features["labels"]]
    tags = predictions_to_tags(predictions, features["word_ids"], LABELS, [3, 2])
    assert tags[0] == ["B-ORG", "O", "O"]  # "German" was cut: its B-MISC counts as missed
    assert entity_scores([list(s.tags) for s in SENTENCES], tags)["recall"] == pytest.approx(2 / 3)


@pytest.mark.realmodel
def test_align_labels_real_tokenizer(minilm_tokenizer):
    sentence = NerSentence(("Kuzmanovic", "visits", "Leicestershire"), ("B-PER", "O", "B-ORG"))
    label_to_id = {"O": 0, "B-ORG": 1, "B-PER": 2}
    features = align_labels([sentence], minilm_tokenizer, label_to_id, max_len=32)
    labelled = [label for label in features["labels"][0] if label != IGNORE_INDEX]
    assert labelled == [2, 0, 1]
    assert features["word_ids"][0] == [None, 0, 0, 0, 1, 2, None]  # ku ##zman ##ovic visits leicestershire
    assert predictions_to_tags([features["labels"][0]], features["word_ids"], ["O", "B-ORG", "B-PER"], [3]) == [
        ["B-PER", "O", "B-ORG"]
    ]


# Counts from shared/data/MANIFEST.md (and the CoNLL-2003 paper, Table 1): sentences, tokens, LOC/MISC/ORG/PER.
REAL_COUNTS = [
    ("train", 14041, 203621, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
    ("valid", 3250, 51362, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
    ("test", 3453, 46435, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("split", "sentence_count", "token_count", "entity_counts"), REAL_COUNTS)
def test_real_conll_counts(shared_data, split, sentence_count, token_count, entity_counts):
    sentences = read_conll(shared_data / "conll2003" / f"{split}.txt")
    assert len(sentences) == sentence_count
    assert sum(len(sentence.words) for sentence in sentences) == token_count
    entities = Counter(entity[0] for sentence in sentences for entity in extract_entities(sentence.tags))
    assert entities == entity_counts
    iob2 = Counter(entity[0] for sentence in sentences for entity in extract_entities(to_iob2(sentence.tags)))
    assert iob2 == entity_counts
