"""Token classification on any tag set (#18): --task pos / chunk read CoNLL-2003's POS and chunk columns, own
files name their tag column with --tag-column (a CoNLL index or a JSONL key), a tiny model is fine-tuned and
evaluated on POS end to end (export's int8 guard and serve's tags per word included), and every bad input is one
error line with exit code 2 before any training."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from distilkit.errors import ConfigError
from distilkit.evaluation import EvaluateConfig, evaluate
from distilkit.io import read_json
from distilkit.tasks.readers.splits import read_examples
from distilkit.tasks.registry import task_spec
from distilkit.train.finetune import FinetuneConfig, finetune
from tasks.test_own_data import assert_one_line_error, invoke
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread  # noqa: F401 (one_thread: autouse fixture)

TINY = ["--max-len", "32", "--batch-size", "8", "--max-steps", "1"]
POS_TAGS = ["NNP", "VBD", "IN", "NNP", "."]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    return base_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def pos_model(tmp_path_factory, encoder) -> tuple[Path, str, object]:
    root = tmp_path_factory.mktemp("pos")
    data = conll_dir(root)
    result = finetune(FinetuneConfig(model=encoder, task="pos", data=data, out=str(root / "m"), max_steps=2, **FAST))
    return root / "m", data, result


def test_pos_and_chunk_read_their_columns(tmp_path):
    data = conll_dir(tmp_path)
    assert read_examples(task_spec("pos"), data, "train")[0].tags == tuple(POS_TAGS)
    # chunk tags are IOB1 in the file (I-NP opens a chunk), read as IOB2
    assert read_examples(task_spec("chunk"), data, "dev")[0].tags == ("B-NP", "B-VP", "B-PP", "B-NP", "O")
    assert read_examples(task_spec("ner"), data, "test")[0].tags == ("B-PER", "O", "O", "B-LOC", "O")


def test_pos_finetune_and_evaluate_end_to_end(tmp_path, pos_model):
    out, data, result = pos_model
    assert set(result.metrics) == {"accuracy", "macro_f1"} and result.main_score == result.metrics["accuracy"]
    info = read_json(out / "distilkit_task.json")
    assert info["task"] == "pos" and info["tag_scheme"] == "plain" and info["labels"] == [".", "IN", "NNP", "VBD"]
    evaluated = evaluate(EvaluateConfig(model=str(out), task="pos", data=data, out=str(tmp_path / "e")))
    assert evaluated["model"]["metrics"] == pytest.approx(result.metrics)
    rows = [line.split("\t") for line in (tmp_path / "e" / "predictions_dev.tsv").read_text().splitlines()[1:]]
    words = [row for row in rows if len(row) == 3]
    assert len(words) == 24 * 5
    assert evaluated["model"]["metrics"]["accuracy"] == pytest.approx(sum(r[1] == r[2] for r in words) / len(words))
    baseline = evaluated["baseline"]  # the majority tag, NNP, is right on 2 words of 5
    assert baseline["predictor"] == "'NNP' for every word (the majority tag)"
    assert baseline["metrics"]["accuracy"] == pytest.approx(0.4)


def test_pos_model_serves_tags_per_word(pos_model):
    pytest.importorskip("fastapi")
    from distilkit.ship.serve.predictor import load_predictor

    predictor = load_predictor("pos", str(pos_model[0]), backend="torch")
    (answer,) = predictor.predict(["ahab sat in boston ."])
    assert "entities" not in answer  # plain tags decode into no spans
    assert [word["text"] for word in answer["words"]] == ["ahab", "sat", "in", "boston", "."]
    assert all(word["tag"] in (".", "IN", "NNP", "VBD") for word in answer["words"])


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs distilkit[onnx]")
def test_int8_guard_scores_a_pos_tagger(tmp_path, pos_model):
    from distilkit.ship.export import ExportConfig, export

    out, data, result = pos_model
    exported = export(ExportConfig(str(out), "int8", str(tmp_path / "x"), eval_task="pos", data_dir=data,
                                   max_drop=100.0))  # fmt: skip
    guard = exported.guard
    assert guard["accepted"] and guard["fp32"]["split"] == "dev" and set(guard["fp32"]["metrics"]) == {
        "accuracy", "macro_f1"}  # fmt: skip
    assert guard["fp32"]["score"] == pytest.approx(result.metrics["accuracy"], abs=1e-6)


def conll_file(path: Path, columns: int = 4) -> str:
    lines = []
    for index in range(8):
        words = [("ahab", "NNP", "I-NP", "I-PER"), ("sat", "VBD", "I-VP", "O"), ("in", "IN", "I-PP", "O"),
                 (["boston", "jo"][index % 2], "NNP", "I-NP", "I-LOC")]  # fmt: skip
        lines += [" ".join(word[:columns]) for word in words] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def test_own_conll_file_tag_column_index(tmp_path, encoder):
    train = conll_file(tmp_path / "train.conll")
    base = ["finetune", "--model", encoder, "--task", "token-classification", "--train", train, "--dev", train, *TINY]
    result = invoke(*base, "--tag-column", "1", "--out", tmp_path / "pos")
    assert result.exit_code == 0, result.output
    info = read_json(tmp_path / "pos" / "distilkit_task.json")
    assert info["labels"] == ["IN", "NNP", "VBD"] and info["tag_scheme"] == "plain"
    assert set(info["metrics"]) == {"accuracy", "macro_f1"}
    result = invoke(*base, "--out", tmp_path / "ner")  # default: the last column, IOB1 detected
    assert result.exit_code == 0, result.output
    info = read_json(tmp_path / "ner" / "distilkit_task.json")
    assert info["tag_scheme"] == "iob1" and info["labels"] == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    # evaluate reads the same column of an own file and scores it as the model was trained
    evaluated = invoke("evaluate", "--model", tmp_path / "pos", "--task", "token-classification", "--dev", train,
                       "--tag-column", "1", "--out", tmp_path / "e")  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert set(read_json(tmp_path / "e" / "evaluation.json")["model"]["metrics"]) == {"accuracy", "macro_f1"}


def test_own_jsonl_tag_column_key_and_forced_scheme(tmp_path, encoder):
    rows = [{"tokens": ["ahab", "sat"], "upos": ["PROPN", "VERB"], "tags": ["B-PER", "O"]}] * 4
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    base = ["finetune", "--model", encoder, "--task", "token-classification", "--train", train, "--dev", train, *TINY]
    assert invoke(*base, "--tag-column", "upos", "--out", tmp_path / "a").exit_code == 0
    assert read_json(tmp_path / "a" / "distilkit_task.json")["labels"] == ["PROPN", "VERB"]
    # B-PER/O read as plain tags when forced: scored per word
    assert invoke(*base, "--tag-scheme", "plain", "--out", tmp_path / "b").exit_code == 0
    info = read_json(tmp_path / "b" / "distilkit_task.json")
    assert info["tag_scheme"] == "plain" and set(info["metrics"]) == {"accuracy", "macro_f1"}


def test_bad_tag_input_is_one_line_before_training(tmp_path, encoder):
    conll = conll_file(tmp_path / "train.conll")
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O", "B-X"]}) + "\n", encoding="utf-8")
    uneven = tmp_path / "uneven.jsonl"
    uneven.write_text(json.dumps({"tokens": ["a", "b", "c"], "tags": ["O", "B-X"]}) + "\n", encoding="utf-8")
    mixed = tmp_path / "mixed.conll"
    mixed.write_text("a I-PER\nb O\n\nc O\nd E-LOC\n", encoding="utf-8")

    def finetune_cli(train, *extra):
        return invoke("finetune", "--model", encoder, "--task", "token-classification", "--train", train, "--dev",
                      train, "--out", tmp_path / "o", *TINY, *extra)  # fmt: skip

    assert_one_line_error(finetune_cli(conll, "--tag-column", "7"), "train.conll, line 1", "no tag column 7",
                          "4 columns: 0 (the word) to 3")  # fmt: skip
    assert_one_line_error(finetune_cli(conll, "--tag-column", "pos"), "columns have no names", "index")
    assert_one_line_error(finetune_cli(jsonl, "--tag-column", "upos"), "no column 'upos' (--tag-column)",
                          "found: tokens, tags")  # fmt: skip
    assert_one_line_error(finetune_cli(uneven), "uneven.jsonl, line 1", "3 words but 2 tags")
    assert_one_line_error(finetune_cli(mixed), "mixed.conll, line 1: 'I-PER' opens an entity (IOB1)",
                          "line 4 has 'E-LOC' (BIOES)", "mixed tag schemes")  # fmt: skip
    assert_one_line_error(finetune_cli(conll, "--tag-scheme", "bilou"), "unknown tag scheme 'bilou'")
    assert_one_line_error(finetune_cli(conll, "--tag-column", "1", "--label-column", "x"), "give one")
    # the case turned round: --task conll2003 on a file whose last column holds POS tags
    folder = tmp_path / "pos-last"
    folder.mkdir()
    conll_file(folder / "train.txt", columns=2)
    pos_last = invoke("finetune", "--model", encoder, "--task", "conll2003", "--data", folder, "--eval-split", "none",
                      "--out", tmp_path / "o", *TINY)  # fmt: skip
    assert_one_line_error(pos_last, "train.txt, line 1: 'NNP' is not an IOB2 tag (O, B-X or I-X)", "--tag-scheme")
    assert not (tmp_path / "o").exists()


def test_tag_flags_belong_to_token_tasks():
    with pytest.raises(ConfigError, match="--tag-scheme applies to token classification, not to --task sst2"):
        FinetuneConfig(model="m", task="sst2", data="d", out="o", tag_scheme="iob2")
    with pytest.raises(ConfigError, match="--tag-column names the tags of token classification"):
        FinetuneConfig(model="m", task="classification", train="t.csv", dev="d.csv", out="o", tag_column="pos")
    with pytest.raises(ConfigError, match="apply to your own files or --dataset, not to --data"):
        FinetuneConfig(model="m", task="pos", data="d", out="o", tag_column="1")
    with pytest.raises(ConfigError, match="--tag-scheme applies to token classification"):
        EvaluateConfig(model="m", task="rte", data="d", tag_scheme="plain")


@pytest.mark.realdata
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_real_conll_columns_are_detected(shared_data, split):
    from distilkit.tasks.readers.ner import iter_conll
    from distilkit.tasks.readers.schemes import resolve_scheme

    path = shared_data / "conll2003" / f"{split}.txt"
    detected = [resolve_scheme(((s.tags, f"line {line}") for line, s in iter_conll(path, column)), None, str(path))
                for column in (1, 2, 3)]  # fmt: skip
    assert detected == ["plain", "iob1", "iob1"]  # POS; chunk and NER (train's 2 stray B- openings outvoted)
    pos = read_examples(task_spec("pos"), shared_data / "conll2003", split)
    assert len({tag for sentence in pos for tag in sentence.tags}) > 40  # the Penn Treebank tag set
