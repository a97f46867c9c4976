"""The task registry: every task resolves, its spellings, the one-line error for an unknown task, each task's
metrics and main score, and the one vocabulary of kinds and splits."""

from __future__ import annotations

import pytest

from distilkit.errors import ConfigError
from distilkit.tasks.registry import HEADS, KINDS, TASKS, canonical_split, glue_tasks, task_spec

# task → (metrics in order, the ones its main score averages): the GLUE paper's convention, SQuAD v1.1's F1,
# CoNLL-2003's entity F1, and the problem types of your own data.
EXPECTED_METRICS = {
    "cola": (("matthews",), ("matthews",)),
    "sst2": (("accuracy",), ("accuracy",)),
    "mrpc": (("f1", "accuracy"), ("f1", "accuracy")),
    "stsb": (("pearson", "spearman"), ("pearson", "spearman")),
    "qqp": (("f1", "accuracy"), ("f1", "accuracy")),
    "mnli": (("accuracy",), ("accuracy",)),
    "mnli-mm": (("accuracy",), ("accuracy",)),
    "qnli": (("accuracy",), ("accuracy",)),
    "rte": (("accuracy",), ("accuracy",)),
    "wnli": (("accuracy",), ("accuracy",)),
    "squad": (("exact_match", "f1"), ("f1",)),
    "conll2003": (("precision", "recall", "f1"), ("f1",)),
    "pos": (("accuracy", "macro_f1"), ("accuracy",)),  # plain tags: per word (#18)
    "chunk": (("precision", "recall", "f1"), ("f1",)),
    "classification": (("accuracy", "macro_f1"), ("accuracy",)),
    "regression": (("pearson", "spearman", "mse"), ("pearson", "spearman")),
    "token-classification": (("precision", "recall", "f1"), ("f1",)),
    "qa": (("exact_match", "f1"), ("f1",)),
    "sts": (("spearman", "pearson"), ("spearman",)),
    "embedding-suite": (("sts", "pair-mrpc", "pair-qnli", "classify-sst2"),) * 2,
}


def test_every_task_resolves_to_its_own_record():
    assert set(TASKS) == set(EXPECTED_METRICS)
    for key, spec in TASKS.items():
        assert task_spec(key) is spec
        assert task_spec(key.upper()) is spec
        assert spec.kind in KINDS and spec.head == HEADS[spec.kind]
        assert spec.name == key or (key, spec.name) == ("mnli-mm", "mnli")


@pytest.mark.parametrize(
    ("spelling", "name"),
    [("SST-2", "sst2"), ("sst", "sst2"), ("STS-B", "stsb"), ("CoLA", "cola"), ("MNLI-m", "mnli"),
     ("squad1.1", "squad"), ("SQuAD v1.1", "squad"), ("ner", "conll2003"), ("CoNLL-03", "conll2003"),
     ("POS", "pos"), ("chunking", "chunk"), ("conll2003-pos", "pos"),
     ("token", "token-classification"), ("TokenClassification", "token-classification"),
     ("text-classification", "classification"), ("extractive-qa", "qa"), ("sts", "sts")],
)  # fmt: skip
def test_aliases(spelling, name):
    assert task_spec(spelling).name == name


def test_mnli_mismatched_is_mnli_scored_on_its_mismatched_splits():
    matched, mismatched = task_spec("mnli"), task_spec("MNLI-mm")
    assert mismatched.name == matched.name == "mnli" and mismatched.labels == matched.labels
    assert matched.file_split("dev") == "dev_matched" and mismatched.file_split("validation") == "dev_mismatched"
    assert task_spec("mnli-mismatched") is mismatched


def test_unknown_task_is_one_line_listing_the_valid_tasks():
    with pytest.raises(ConfigError) as error:
        task_spec("imdb")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("unknown task 'imdb' — choose one of: cola, sst2, mrpc")
    assert all(name in message for name in TASKS)


@pytest.mark.parametrize("key", list(EXPECTED_METRICS))
def test_metrics_and_main_score_of_each_task(key):
    spec = TASKS[key]
    metrics, main = EXPECTED_METRICS[key]
    assert (spec.metrics, spec.main) == (metrics, main)
    values = {name: float(index + 1) for index, name in enumerate(spec.metrics)}
    assert spec.main_score(values) == pytest.approx(sum(values[name] for name in main) / len(main))


def test_main_scores_by_hand():
    assert task_spec("MRPC").main_score({"f1": 0.9, "accuracy": 0.8}) == pytest.approx(0.85)
    assert task_spec("STS-B").main_score({"pearson": 0.88, "spearman": 0.86}) == pytest.approx(0.87)
    assert task_spec("CoLA").main_score({"matthews": 0.5}) == 0.5
    assert task_spec("squad1.1").main_score({"exact_match": 80.0, "f1": 88.0}) == 88.0
    assert task_spec("conll2003").main_score({"precision": 0.9, "recall": 0.8, "f1": 0.85}) == 0.85


def test_records_say_what_a_model_must_do():
    assert task_spec("sst2").head == "ForSequenceClassification" and task_spec("sst2").num_labels == 2
    assert task_spec("stsb").kind == "regression" and task_spec("stsb").num_labels == 1
    assert task_spec("stsb").model_kind == "classification"  # a one-output sequence classifier (ship/)
    assert task_spec("squad").head == "ForQuestionAnswering" and task_spec("squad").num_labels == 2
    assert task_spec("squad").default_max_len == 384 and task_spec("rte").default_max_len == 128
    assert task_spec("mnli").labels == ("contradiction", "entailment", "neutral")
    assert not task_spec("sts").trains_head and task_spec("sts").model_kind == "embedding"


def test_label_sources():
    ner = task_spec("conll2003")
    assert ner.labels_from_data and ner.labels == ()
    assert ner.with_labels(["O", "B-PER"]).labels == ("O", "B-PER") and ner.with_labels(["O"]).name == "conll2003"
    assert task_spec("sst2").with_labels(["x", "y"]) is task_spec("sst2")  # a benchmark's labels are fixed
    assert task_spec("classification").labels_from_data and not task_spec("regression").labels_from_data


def test_benchmarks_and_own_data_problem_types():
    assert [spec.name for spec in glue_tasks()] == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte",
                                                    "wnli"]  # fmt: skip
    own = {spec.name for spec in TASKS.values() if spec.own_data_only}
    assert own == {"classification", "regression", "token-classification", "qa"}
    assert task_spec("squad").benchmark == "squad" and task_spec("ner").benchmark == "conll"


def test_one_split_alias_table():
    assert canonical_split("validation") == canonical_split("valid") == canonical_split("val") == "dev"
    assert canonical_split("Validation-Mismatched") == "dev_mismatched"
    assert canonical_split("test_with_scores") == "test_with_scores"
    with pytest.raises(ConfigError, match=r"RTE has no split 'dev_mismatched' — choose one of: train, dev, test"):
        task_spec("rte").file_split("dev_mismatched")
    assert task_spec("conll2003").files["dev"] == ("valid.txt", "dev.txt", "eng.testa")


def test_conll_records_name_their_column_and_scheme():
    assert [(task_spec(n).tag_column, task_spec(n).tag_scheme) for n in ("pos", "chunk", "conll2003")] == [
        (1, "plain"), (2, "iob2"), (-1, "iob2")]  # fmt: skip
    assert task_spec("token-classification").tag_scheme is None  # own data: detected


def test_with_scheme_sets_the_metrics_and_names_bad_schemes():
    own = task_spec("token-classification")
    assert own.with_scheme("BIO").tag_scheme == "iob2" and own.with_scheme("IOBES").tag_scheme == "bioes"
    assert own.with_scheme("plain").main == ("accuracy",) and own.with_scheme("iob1").main == ("f1",)
    assert task_spec("sst2").with_scheme("plain") is task_spec("sst2")
    with pytest.raises(ConfigError, match="unknown tag scheme 'bilou' — choose one of: iob1, iob2, bioes, plain"):
        own.with_scheme("bilou")
