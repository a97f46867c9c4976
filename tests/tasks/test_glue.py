"""GLUE reader on tiny files written here, plus counts on the real files (realdata)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.features import encode_glue
from distilkit.tasks.readers.glue import Example, read_glue
from distilkit.tasks.registry import task_spec


def write_tsv(folder: Path, name: str, lines: list[str], bom: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(("\ufeff" if bom else "") + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_sst2_header_labels_and_stripped_text(tmp_path):
    write_tsv(tmp_path / "SST-2", "dev.tsv", ["sentence\tlabel", "a charming journey . \t1", "bleak \t0"])
    examples = read_glue(task_spec("SST-2"), tmp_path / "SST-2", "dev")
    assert examples == [Example("a charming journey .", None, 1), Example("bleak", None, 0)]


@pytest.mark.parametrize("name", ["sst2", "SST-2", "sst-2", "Sst_2"])
def test_task_name_aliases_and_glue_root(tmp_path, name):
    write_tsv(tmp_path / "SST-2", "train.tsv", ["sentence\tlabel", "fine\t1"])
    assert read_glue(task_spec(name), tmp_path, "train") == [Example("fine", None, 1)]  # data_dir = GLUE root


def test_cola_train_has_no_header_but_test_does(tmp_path):
    folder = tmp_path / "CoLA"
    write_tsv(folder, "train.tsv", ["gj04\t1\t\tOur friends won't buy this.", "gj04\t0\t*\tThey drank the pub."])
    write_tsv(folder, "test.tsv", ["index\tsentence", "0\tBill whistled past the house."])
    assert read_glue(task_spec("cola"), folder, "train") == [
        Example("Our friends won't buy this.", None, 1),
        Example("They drank the pub.", None, 0),
    ]
    assert read_glue(task_spec("cola"), folder, "test") == [Example("Bill whistled past the house.", None, None)]


def test_mrpc_bom_and_unbalanced_quotes(tmp_path):
    folder = tmp_path / "MRPC"
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    write_tsv(folder, "dev.tsv", [header, '1\t13\t14\tHe said "no.\t"The pie business.'], bom=True)
    assert read_glue(task_spec("mrpc"), folder, "validation") == [Example('He said "no.', '"The pie business.', 1)]


def test_stsb_float_scores_and_bad_score(tmp_path):
    folder = tmp_path / "STS-B"
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    row = "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tAn air plane."
    write_tsv(folder, "train.tsv", [header, row + "\t5.000", row + "\t1.53333333333333"])
    examples = read_glue(task_spec("sts-b"), folder, "train")
    assert [example.label for example in examples] == [5.0, pytest.approx(1.5333333)]
    write_tsv(folder, "dev.tsv", [header, row + "\tfive"])
    with pytest.raises(DataError, match=r"dev\.tsv, line 2: score 'five' is not a number"):
        read_glue(task_spec("stsb"), folder, "dev")


def test_rte_string_labels_and_label_outside_set(tmp_path):
    folder = tmp_path / "RTE"
    header = "index\tsentence1\tsentence2\tlabel"
    write_tsv(folder, "train.tsv", [header, "0\tA.\tB.\tnot_entailment", "1\tC.\tD.\tentailment"])
    assert [example.label for example in read_glue(task_spec("rte"), folder)] == [1, 0]
    write_tsv(folder, "dev.tsv", [header, "0\tA.\tB.\tentailment", "1\tC.\tD.\tcontradiction"])
    with pytest.raises(DataError, match=r"dev\.tsv, line 3: label 'contradiction' is not one of entailment"):
        read_glue(task_spec("rte"), folder, "dev")


def test_wrong_column_count_names_file_and_line(tmp_path):
    folder = tmp_path / "WNLI"
    write_tsv(folder, "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\t1", "1\tC.\t0"])
    with pytest.raises(DataError, match=r"train\.tsv, line 3: expected 4 tab-separated columns, got 3"):
        read_glue(task_spec("wnli"), folder, "train")


def test_missing_text_column(tmp_path):
    folder = tmp_path / "QNLI"
    write_tsv(folder, "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA?\tB.\tentailment"])
    with pytest.raises(DataError, match="header has no column 'question'"):
        read_glue(task_spec("qnli"), folder, "dev")


def test_label_column_required_outside_test_splits(tmp_path):
    folder = tmp_path / "RTE"
    write_tsv(folder, "dev.tsv", ["index\tsentence1\tsentence2", "0\tA.\tB."])
    with pytest.raises(DataError, match="header has no column 'label'"):
        read_glue(task_spec("rte"), folder, "dev")


def test_empty_and_header_only_files(tmp_path):
    write_tsv(tmp_path / "CoLA", "train.tsv", [])
    with pytest.raises(DataError, match=r"train\.tsv is empty"):
        read_glue(task_spec("cola"), tmp_path, "train")
    folder = tmp_path / "SST-2"
    write_tsv(folder, "train.tsv", [])
    with pytest.raises(DataError, match=r"train\.tsv is empty"):
        read_glue(task_spec("sst2"), folder, "train")
    write_tsv(folder, "dev.tsv", ["sentence\tlabel"])
    with pytest.raises(DataError, match="no examples"):
        read_glue(task_spec("sst2"), folder, "dev")


def test_missing_dir_and_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_glue(task_spec("rte"), tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match=r"no train\.tsv for RTE"):
        read_glue(task_spec("rte"), tmp_path, "train")


def test_unknown_task_and_split(tmp_path):
    with pytest.raises(ConfigError, match="squad is not a GLUE task — choose one of: cola, sst2"):
        read_glue(task_spec("squad"), tmp_path)
    with pytest.raises(ConfigError, match=r"no split 'dev_mismatched'.*train, dev, test"):
        task_spec("rte").file_split("dev_mismatched")


def test_mnli_split_aliases():
    assert task_spec("mnli").file_split("dev") == "dev_matched"
    assert task_spec("MNLI-mm").file_split("validation") == "dev_mismatched"
    assert task_spec("mnli-mm").file_split("test") == "test_mismatched"
    assert task_spec("mnli").file_split("validation_mismatched") == "dev_mismatched"
    assert task_spec("mnli-mm").file_split("train") == "train"


def test_task_records():
    assert task_spec("sts-b").num_labels == 1 and task_spec("stsb").kind == "regression"
    assert task_spec("mnli").labels == ("contradiction", "entailment", "neutral")
    assert task_spec("qnli").labels == ("entailment", "not_entailment")


def test_encode_glue_pairs_truncation_and_labels(task_tokenizer):
    examples = [Example("the team won", "denver won", 1), Example("a", "b", 0)]
    features = encode_glue(examples, task_tokenizer, max_len=6)
    assert set(features) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert features["labels"] == [1, 0]
    assert max(len(ids) for ids in features["input_ids"]) == 6
    second = task_tokenizer.convert_ids_to_tokens(features["input_ids"][1])
    assert second == ["[CLS]", "a", "[SEP]", "b", "[SEP]"]
    assert features["token_type_ids"][1] == [0, 0, 0, 1, 1]


def test_encode_glue_unlabelled_single_sentences(task_tokenizer):
    features = encode_glue([Example("the team", None, None)], task_tokenizer, max_len=32)
    assert "labels" not in features
    assert task_tokenizer.convert_ids_to_tokens(features["input_ids"][0]) == ["[CLS]", "the", "team", "[SEP]"]


# Counts from shared/data/MANIFEST.md (Appendix B).
REAL_COUNTS = [
    ("SST-2", "train", 67349, {0: 29780, 1: 37569}),
    ("SST-2", "dev", 872, {0: 428, 1: 444}),
    ("MRPC", "train", 3668, {0: 1194, 1: 2474}),
    ("MRPC", "dev", 408, {0: 129, 1: 279}),
    ("MRPC", "test", 1725, {None: 1725}),
    ("MRPC", "test_with_labels", 1725, {0: 578, 1: 1147}),
    ("STS-B", "train", 5749, None),
    ("STS-B", "dev", 1500, None),
    ("STS-B", "test_with_scores", 1379, None),
    ("RTE", "train", 2490, {0: 1249, 1: 1241}),
    ("RTE", "dev", 277, {0: 146, 1: 131}),
    ("RTE", "test", 3000, {None: 3000}),
    ("WNLI", "train", 635, {0: 323, 1: 312}),
    ("WNLI", "dev", 71, {0: 40, 1: 31}),
    ("QNLI", "dev", 5463, {0: 2702, 1: 2761}),
    ("CoLA", "train", 8551, {0: 2528, 1: 6023}),
    ("CoLA", "dev", 1043, {0: 322, 1: 721}),
    ("CoLA", "test", 1063, {None: 1063}),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("task", "split", "count", "label_counts"), REAL_COUNTS)
def test_real_glue_counts(shared_data, task, split, count, label_counts):
    examples = read_glue(task_spec(task), shared_data / "glue", split)
    assert len(examples) == count
    if label_counts is not None:
        assert Counter(example.label for example in examples) == label_counts
    else:
        assert all(0.0 <= example.label <= 5.0 for example in examples)
