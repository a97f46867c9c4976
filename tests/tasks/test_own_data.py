"""Your own labelled data (--train/--dev/--test files, --dataset): every file format and problem type, the label set
taken from the training file, a finetune → evaluate round trip, every bad input as one CLI error line, a
save_to_disk folder, and the streamed feature store against one-shot encoding."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.errors import ConfigError, DataError
from distilkit.io import read_json
from distilkit.tasks.data import encode_split
from distilkit.tasks.readers.own_data import OwnData, Reader, discover_labels
from distilkit.tasks.registry import task_spec
from distilkit.train.finetune import FinetuneConfig
from tasks.tiny_tasks import SUBJECTS, base_encoder, one_thread  # noqa: F401 (one_thread: autouse fixture)

runner = CliRunner()
TINY = ["--max-len", "32", "--batch-size", "8", "--max-steps", "1"]
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
FORMATS = ["csv", "tsv", "jsonl", *(["parquet"] if HAS_PYARROW else [])]


def write_rows(path: Path, rows: list[dict]) -> str:
    """rows (dicts with the same keys) as .csv, .tsv, .jsonl or .parquet, by the path's suffix."""
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    return str(path)


def sentiment_rows(n: int, labels=("neg", "pos")) -> list[dict]:
    return [{"text": f"{SUBJECTS[i % 8]}, was {'good' if i % 2 else 'bad'} .", "label": labels[i % len(labels)]}
            for i in range(n)]  # fmt: skip


def pair_rows(n: int) -> list[dict]:
    return [{"sentence1": f"{SUBJECTS[i % 8]} sat .", "sentence2": f"{SUBJECTS[(i + i % 2) % 8]} sat .",
             "label": i % 2} for i in range(n)]  # fmt: skip


def score_rows(n: int) -> list[dict]:
    return [{"text": f"{SUBJECTS[i % 8]} sat .", "text_pair": f"{SUBJECTS[i % 5]} sat .", "label": i % 5 + 0.5}
            for i in range(n)]  # fmt: skip


def ner_rows(n: int) -> list[dict]:
    names, places = ["ahab", "ishmael", "jo"], ["nantucket", "boston"]
    return [{"tokens": [names[i % 3], "sat", "in", places[i % 2], "."], "tags": ["B-PER", "O", "O", "B-LOC", "O"]}
            for i in range(n)]  # fmt: skip


def conll_file(path: Path, rows: list[dict]) -> str:
    blocks = ["\n".join(f"{w} {t}" for w, t in zip(row["tokens"], row["tags"], strict=True)) for row in rows]
    path.write_text("-DOCSTART- O\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    return str(path)


def qa_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        name = f"{'abcde'[i % 5]}ahab"
        context = f"the sea was long . the captain of the ship was {name} . the night was long ."
        answers = {"text": [name], "answer_start": [context.index(name)]}
        rows.append({"id": f"q{i}", "title": f"t{i % 3}", "context": context,
                     "question": "who was the captain of the ship ?", "answers": answers})  # fmt: skip
    return rows


def squad_json(path: Path, rows: list[dict]) -> str:
    articles = [{"title": row["title"], "paragraphs": [{"context": row["context"], "qas": [
        {"id": row["id"], "question": row["question"],
         "answers": [{"text": row["answers"]["text"][0], "answer_start": row["answers"]["answer_start"][0]}]}]}]}
        for row in rows]  # fmt: skip
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return str(path)


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    return base_encoder(tmp_path_factory.mktemp("encoder"))


# ---------------------------------------------------------------------------------------------
# Formats and problem types
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_table_format_reads_the_same_examples(tmp_path, fmt, task_tokenizer):
    own = OwnData(train=write_rows(tmp_path / f"train.{fmt}", sentiment_rows(12)),
                  dev=write_rows(tmp_path / f"dev.{fmt}", sentiment_rows(6, ("pos", "neg"))))  # fmt: skip
    spec = task_spec("classification").with_labels(discover_labels(own, task_spec("classification")))
    assert spec.labels == ("neg", "pos")
    dev = encode_split(spec, own, "dev", task_tokenizer, 32, train=False)
    assert [example.label for example in dev.examples] == [1, 0, 1, 0, 1, 0]
    assert dev.examples[0].text == "the ship, was bad ." and dev.examples[0].text_pair is None
    train = encode_split(spec, own, "train", task_tokenizer, 32)
    assert train.examples is None and train.num_examples == 12 and len(train) == 12  # training text is not kept
    assert list(train.features["labels"]) == [0, 1] * 6


@pytest.mark.parametrize("sample", [None, 5])
def test_training_labels_are_found_while_encoding_in_one_pass(tmp_path, task_tokenizer, monkeypatch, sample):
    """Without labels the training split is read once (twice with a sample: counting, then encoding) and encoded
    with first-seen ids, remapped to the sorted label set: the same features as the two-pass way."""
    rows = [{"text": f"row {i} .", "label": name} for i, name in enumerate(["zeta", "alpha", "mid", "alpha"] * 3)]
    own = OwnData(train=write_rows(tmp_path / "train.csv", rows))
    reads = []
    chunks = Reader.chunks
    monkeypatch.setattr(Reader, "chunks", lambda self, *a, **k: reads.append(1) or chunks(self, *a, **k))
    found = encode_split(task_spec("classification"), own, "train", task_tokenizer, 32, sample=sample, keep=True)
    assert len(reads) == (1 if sample is None else 2) and found.spec.labels == ("alpha", "mid", "zeta")
    known = encode_split(found.spec, own, "train", task_tokenizer, 32, sample=sample, keep=True)
    assert list(found.features["labels"]) == list(known.features["labels"]) and found.examples == known.examples
    assert found.fingerprint() == known.fingerprint()
    tags = ner_rows(6)
    ner_own = OwnData(train=write_rows(tmp_path / "ner.jsonl", tags))
    ner_found = encode_split(task_spec("token-classification"), ner_own, "train", task_tokenizer, 32)
    assert ner_found.spec.labels == ("O", "B-LOC", "B-PER", "I-LOC", "I-PER")
    ner_known = encode_split(ner_found.spec, ner_own, "train", task_tokenizer, 32)
    assert ner_found.fingerprint() == ner_known.fingerprint()


def test_pair_regression_and_numeric_labels(tmp_path, task_tokenizer):
    own = OwnData(
        train=write_rows(tmp_path / "train.csv", pair_rows(8)), dev=write_rows(tmp_path / "d.csv", pair_rows(4))
    )
    spec = task_spec("classification").with_labels(discover_labels(own, task_spec("classification")))
    dev = encode_split(spec, own, "dev", task_tokenizer, 32, train=False)
    assert dev.examples[1].text == "the whale sat ." and dev.examples[1].text_pair == "her mother sat ."
    assert spec.labels == ("0", "1") and "token_type_ids" in dev.features
    # integer class names sort numerically, not as text
    rows = [{"text": "a", "label": label} for label in (10, 2, 1, 2)]
    own = OwnData(train=write_rows(tmp_path / "numbers.jsonl", rows))
    assert discover_labels(own, task_spec("classification")) == ["1", "2", "10"]
    # regression: float targets, a pair by the text/text_pair defaults
    own = OwnData(
        train=write_rows(tmp_path / "s.tsv", score_rows(8)), dev=write_rows(tmp_path / "sd.tsv", score_rows(3))
    )
    dev = encode_split(task_spec("regression"), own, "dev", task_tokenizer, 32, train=False)
    assert [example.label for example in dev.examples] == [0.5, 1.5, 2.5] and dev.examples[0].text_pair
    assert dev.features["labels"].dtype == np.float32


def test_token_classification_from_jsonl_and_conll_columns(tmp_path, task_tokenizer):
    rows = ner_rows(6)
    jsonl = OwnData(train=write_rows(tmp_path / "train.jsonl", rows), dev=write_rows(tmp_path / "dev.jsonl", rows))
    conll = OwnData(train=conll_file(tmp_path / "train.conll", rows), dev=conll_file(tmp_path / "dev.txt", rows))
    spec = task_spec("token-classification").with_labels(discover_labels(jsonl, task_spec("ner")))
    assert spec.labels == ("O", "B-LOC", "B-PER", "I-LOC", "I-PER")
    assert discover_labels(conll, spec) == list(spec.labels)
    from_jsonl = encode_split(spec, jsonl, "dev", task_tokenizer, 32, train=False)
    from_conll = encode_split(spec, conll, "dev", task_tokenizer, 32, train=False)
    assert from_jsonl.examples == from_conll.examples and from_jsonl.fingerprint() == from_conll.fingerprint()
    assert from_jsonl.examples[0].tags == ("B-PER", "O", "O", "B-LOC", "O")


def test_qa_from_squad_json_and_jsonl_rows(tmp_path, task_tokenizer):
    rows = qa_rows(5)
    squad = OwnData(train=squad_json(tmp_path / "train.json", rows), dev=squad_json(tmp_path / "dev.json", rows))
    lines = OwnData(train=write_rows(tmp_path / "train.jsonl", rows), dev=write_rows(tmp_path / "dev.jsonl", rows))
    spec = task_spec("qa")
    from_json = encode_split(spec, squad, "dev", task_tokenizer, 48, stride=16, train=False)
    from_lines = encode_split(spec, lines, "dev", task_tokenizer, 48, stride=16, train=False)
    assert from_json.examples == from_lines.examples and from_json.examples[2].answers == ("cahab",)
    train = encode_split(spec, lines, "train", task_tokenizer, 48, stride=16)
    assert {"start_positions", "end_positions"} <= set(train.features)


# ---------------------------------------------------------------------------------------------
# finetune → evaluate
# ---------------------------------------------------------------------------------------------


def test_finetune_evaluate_round_trip_keeps_label_names(tmp_path, encoder):
    train = write_rows(tmp_path / "train.csv", sentiment_rows(24, ("neg", "pos", "meh")))
    dev = write_rows(tmp_path / "dev.csv", sentiment_rows(9, ("neg", "pos", "meh")))
    result = invoke("finetune", "--model", encoder, "--task", "classification", "--train", train, "--dev", dev,
                    "--out", tmp_path / "m", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    config = read_json(tmp_path / "m" / "config.json")
    assert config["id2label"] == {"0": "meh", "1": "neg", "2": "pos"} and config["label2id"]["pos"] == 2
    info = read_json(tmp_path / "m" / "distilkit_task.json")
    assert info["task"] == "classification" and info["labels"] == ["meh", "neg", "pos"] and info["train_examples"] == 24
    assert set(info["metrics"]) == {"accuracy", "macro_f1"}
    cells = [row.split("\t") for row in (tmp_path / "m" / "predictions_dev.tsv").read_text().splitlines()[1:]]
    assert len(cells) == 9 and {c[1] for c in cells} <= {"meh", "neg", "pos"} and cells[0][2] == "neg"
    # evaluate scores a test file with the model's labels; one without labels gets predictions only
    test = write_rows(tmp_path / "test.jsonl", [{"text": row["text"]} for row in sentiment_rows(5)])
    result = invoke("evaluate", "--model", tmp_path / "m", "--task", "classification", "--dev", dev,
                    "--out", tmp_path / "e")  # fmt: skip
    assert result.exit_code == 0, result.output
    evaluation = read_json(tmp_path / "e" / "evaluation.json")
    assert evaluation["model"]["metrics"] == pytest.approx(info["metrics"])
    result = invoke("evaluate", "--model", tmp_path / "m", "--task", "classification", "--test", test,
                    "--out", tmp_path / "t")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "t" / "predictions_test.tsv").read_text().splitlines()
    assert len(rows) == 6 and rows[1].split("\t")[1] in ("meh", "neg", "pos") and rows[1].split("\t")[2] == ""


@pytest.mark.parametrize("task", ["regression", "token-classification", "qa"])
def test_finetune_each_problem_type(tmp_path, encoder, task):
    if task == "regression":
        train, dev = write_rows(tmp_path / "t.csv", score_rows(16)), write_rows(tmp_path / "d.csv", score_rows(6))
    elif task == "token-classification":
        train, dev = conll_file(tmp_path / "t.conll", ner_rows(16)), write_rows(tmp_path / "d.jsonl", ner_rows(6))
    else:
        train, dev = write_rows(tmp_path / "t.jsonl", qa_rows(10)), squad_json(tmp_path / "d.json", qa_rows(4))
    stride = ["--stride", "8"] if task == "qa" else []  # windows of a 32-token feature
    result = invoke("finetune", "--model", encoder, "--task", task, "--train", train, "--dev", dev,
                    "--out", tmp_path / "m", *TINY, *stride)  # fmt: skip
    assert result.exit_code == 0, result.output
    info = read_json(tmp_path / "m" / "distilkit_task.json")
    expected = {"regression": {"pearson", "spearman", "mse"}, "qa": {"exact_match", "f1"}}
    assert set(info["metrics"]) == expected.get(task, {"precision", "recall", "f1"})
    if task == "token-classification":
        assert read_json(tmp_path / "m" / "config.json")["id2label"] == {
            "0": "O",
            "1": "B-LOC",
            "2": "B-PER",
            "3": "I-LOC",
            "4": "I-PER",
        }
    result = invoke("evaluate", "--model", tmp_path / "m", "--task", task, "--dev", dev)
    assert result.exit_code == 0, result.output


def test_task_distill_takes_the_teachers_labels_and_unlabeled_text(tmp_path, encoder):
    train = write_rows(tmp_path / "train.tsv", pair_rows(16))
    dev = write_rows(tmp_path / "dev.tsv", pair_rows(6))
    assert invoke("finetune", "--model", encoder, "--task", "classification", "--train", train, "--dev", dev,
                  "--out", tmp_path / "teacher", *TINY).exit_code == 0  # fmt: skip
    (tmp_path / "more.txt").write_text("the sea sat .\tthe ship sat .\nthe whale sat .\tmy heart sat .\n")
    result = invoke("task-distill", "--teacher", tmp_path / "teacher", "--student", base_encoder(tmp_path / "s", 1),
                    "--task", "classification", "--train", train, "--dev", dev, "--out", tmp_path / "student",
                    "--cache-dir", tmp_path / "cache", "--unlabeled", tmp_path / "more.txt", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "student" / "config.json")["id2label"] == {"0": "0", "1": "1"}
    info = read_json(tmp_path / "student" / "distilkit_task.json")
    assert info["train_examples"] == 16 and info["distillation"]["unlabeled"]["inputs"] == 2
    # a training label the teacher does not know
    odd = write_rows(tmp_path / "odd.csv", [{**row, "label": 7 if i == 3 else row["label"]} for i, row in
                                            enumerate(pair_rows(8))])  # fmt: skip
    result = invoke("task-distill", "--teacher", tmp_path / "teacher", "--student", tmp_path / "s", "--task",
                    "classification", "--train", odd, "--dev", dev, "--out", tmp_path / "o2", *TINY)  # fmt: skip
    assert_one_line_error(
        result, "odd.csv, line 5, column 'label': label '7' is not one of the teacher's labels (0, 1)"
    )


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2
# ---------------------------------------------------------------------------------------------


def test_bad_files_are_one_line_errors(tmp_path, encoder):
    good = write_rows(tmp_path / "good.csv", sentiment_rows(6))

    def finetune(train: str, dev: str = good, *extra):
        return invoke("finetune", "--model", encoder, "--task", extra[0] if extra else "classification",
                      "--train", train, "--dev", dev, "--out", tmp_path / "o", *TINY)  # fmt: skip

    def text(name: str, content: str) -> str:
        (tmp_path / name).write_text(content, encoding="utf-8")
        return str(tmp_path / name)

    unseen = text("unseen.csv", "text,label\na,neg\nb,maybe\n")
    assert_one_line_error(finetune(good, unseen), "unseen.csv, line 3, column 'label'", "'maybe'", "training labels")
    assert_one_line_error(finetune(text("one.csv", "text,label\na,pos\nb,pos\n")), "one.csv", "'label'", "only one")
    mixed = text("mixed.csv", "text,label\na,1\nb,0\nc,pos\n")
    assert_one_line_error(finetune(mixed), "mixed.csv, line 4, column 'label'", "line 2 holds '1'")
    decimal = text("decimal.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0.5}\n')
    assert_one_line_error(finetune(decimal), "decimal.jsonl, line 2, column 'label'", "--task regression")
    nan = text("nan.csv", "text,label\na,0.5\nb,high\n")
    assert_one_line_error(finetune(nan, nan, "regression"), "nan.csv, line 3, column 'label'", "not a number")
    columns = text("columns.csv", "review,stars\ngreat,5\n")
    assert_one_line_error(finetune(columns), "columns.csv", "no text column", "found: review, stars", "--text-column")
    named = invoke("finetune", "--model", encoder, "--task", "classification", "--train", columns, "--dev", good,
                   "--text-column", "review", "--out", tmp_path / "o")  # fmt: skip
    assert_one_line_error(named, "columns.csv", "no label column", "found: review, stars", "--label-column")
    assert_one_line_error(finetune(text("empty.csv", "")), "empty.csv is empty")
    assert_one_line_error(finetune(text("header.tsv", "text\tlabel\n")), "header.tsv has a header but no rows")
    ragged = text("ragged.csv", "text,label\na,pos\nb,neg,extra\n")
    assert_one_line_error(finetune(ragged), "ragged.csv, line 3", "expected 2 comma-separated fields")
    quote = text("quote.csv", 'text,label\n"a"b,pos\n')
    assert_one_line_error(finetune(quote), "quote.csv, line 2", "malformed")
    json_lines = text("bad.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": \n')
    assert_one_line_error(finetune(json_lines), "bad.jsonl, line 2", "not valid JSON")
    missing_key = text("key.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b"}\n')
    assert_one_line_error(finetune(missing_key), "key.jsonl, line 2", "no 'label' key")
    tags = text("tags.jsonl", '{"tokens": ["a", "b"], "tags": ["B-PER", "NN"]}\n')  # #18: plain + span tags
    assert_one_line_error(finetune(tags, tags, "token-classification"), "tags.jsonl, line 1", "mixed tag schemes")
    assert_one_line_error(finetune(text("notes.md", "x")), "cannot tell the format", "notes.md")
    assert not (tmp_path / "o").exists()


def test_bad_flags_are_one_line_errors(tmp_path, encoder):
    good = write_rows(tmp_path / "good.csv", sentiment_rows(6))
    base = ["finetune", "--model", encoder, "--out", tmp_path / "o"]
    assert_one_line_error(invoke(*base, "--task", "classification", "--train", good), "--dev FILE needed")
    assert_one_line_error(invoke(*base, "--task", "classification", "--data", tmp_path), "reads your own data")
    assert_one_line_error(invoke(*base, "--task", "sst2", "--data", tmp_path, "--train", good, "--dev", good),
                          "--data reads a benchmark folder")  # fmt: skip
    assert_one_line_error(invoke(*base, "--task", "classification"), "no data")
    assert_one_line_error(invoke("evaluate", "--model", encoder, "--task", "qa", "--split", "test", "--dev", good),
                          "--test FILE needed")  # fmt: skip
    with pytest.raises(ConfigError, match="--dataset-config needs --dataset"):
        FinetuneConfig(model=encoder, task="qa", train=good, dev=good, dataset_config="x", out=str(tmp_path / "o"))


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch, task_tokenizer):
    (tmp_path / "train.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # find_spec then reports it missing
    with pytest.raises(DataError, match=r"train.parquet \(Parquet\) needs pyarrow — pip install pyarrow"):
        discover_labels(OwnData(train=str(tmp_path / "train.parquet")), task_spec("classification"))


def test_glue_task_name_with_own_files_keeps_the_benchmark_labels(tmp_path, task_tokenizer):
    rows = [{"premise": "a", "hypothesis": "b", "label": label} for label in ("entailment", "not_entailment")]
    rows += [{"premise": "c", "hypothesis": "d", "label": "contradiction"}]
    own = OwnData(train=write_rows(tmp_path / "train.csv", rows), text_column="premise", text_pair_column="hypothesis")
    spec = task_spec("rte")
    with pytest.raises(DataError, match=r"line 4, column 'label': label 'contradiction' is not one of the rte labels"):
        encode_split(spec, own, "train", task_tokenizer, 32, label_source="rte")
    assert Reader(own, spec, "train").columns.pair == "hypothesis"


# ---------------------------------------------------------------------------------------------
# datasets folders
# ---------------------------------------------------------------------------------------------


def test_save_to_disk_folder(tmp_path, encoder, task_tokenizer):
    datasets = pytest.importorskip("datasets", reason="the datasets package is not installed (distilkit[datasets])")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})  # fmt: skip

    def split(n: int):
        rows = sentiment_rows(n)
        return {"sentence": [row["text"] for row in rows], "label": [int(row["label"] == "pos") for row in rows]}

    folder = tmp_path / "ds"
    train, validation = (datasets.Dataset.from_dict(split(n), features=features) for n in (16, 6))
    datasets.DatasetDict({"train": train, "validation": validation}).save_to_disk(folder)
    own = OwnData(dataset=str(folder))
    spec = task_spec("classification").with_labels(discover_labels(own, task_spec("classification")))
    assert spec.labels == ("negative", "positive")  # ClassLabel ids read as their names
    dev = encode_split(spec, own, "dev", task_tokenizer, 32, train=False)
    assert [example.label for example in dev.examples] == [0, 1, 0, 1, 0, 1]
    result = invoke("finetune", "--model", encoder, "--task", "classification", "--dataset", folder,
                    "--out", tmp_path / "m", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_json(tmp_path / "m" / "config.json")["id2label"] == {"0": "negative", "1": "positive"}
    missing = invoke("evaluate", "--model", tmp_path / "m", "--task", "classification", "--dataset", folder,
                     "--split", "test")  # fmt: skip
    assert_one_line_error(missing, "has no test split (found: train, validation)")
