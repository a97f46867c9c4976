"""--exclude: evaluation texts kept out of training text — exact lines, contained texts and shared 13-word runs are
dropped, near misses kept; every reader format; prepare and task-distill record what they dropped."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from distilkit.cli.app import app
from distilkit.data.decontam import EvalIndex, build_exclusion, evaluation_texts, words
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.errors import ConfigError, DataError
from tasks.tiny_tasks import FAST, base_encoder, conll_dir, one_thread, squad_dir, sst2_dir  # noqa: F401

LONG = "the old captain walked along the grey harbour wall every single morning before the fishing boats came home"


def contaminated(index: EvalIndex, *lines: str) -> list[bool]:
    return index.contaminated(list(lines)).tolist()


def test_words_ignore_case_spacing_and_punctuation():
    assert words("  The SHIP,   was -- GOOD! ") == ["the", "ship", "was", "good"]
    assert words("ﬁne") == ["fine"]  # NFKC: the ligature is two letters


def test_exact_line_contained_text_and_shared_ngram_are_dropped():
    index = EvalIndex.from_texts(["Yes.", "the whale was white", LONG])
    assert contaminated(index, "yes", "YES !") == [True, True]  # a one-word text matches the whole line only
    assert contaminated(index, "and then the WHALE was white, they said") == [True]  # contained, punctuation aside
    words13 = " ".join(LONG.split()[3:16])  # 13 consecutive words of the long text, inside other text
    assert contaminated(index, f"it is said that {words13} and so on") == [True]


def test_near_misses_are_kept():
    index = EvalIndex.from_texts(["Yes.", "the whale was white", LONG])
    words12 = " ".join(LONG.split()[3:15])  # only 12 shared words
    changed = LONG.replace("harbour", "river")  # every 13-word run crossing the change differs
    assert contaminated(index, "yes we can", "the whale was grey", f"so {words12} then", "") == [False] * 4
    assert contaminated(index, " ".join(changed.split()[:9])) == [False]
    assert contaminated(index, " ".join(changed.split()[8:])) == [False]


def test_a_run_never_crosses_two_lines():
    index = EvalIndex.from_texts(["the whale was white"])
    assert contaminated(index, "we saw the whale", "was white", "the whale was white") == [False, False, True]


def test_ngram_length_is_configurable():
    index = EvalIndex.from_texts([LONG], ngram=5)
    assert contaminated(index, "x " + " ".join(LONG.split()[7:12]) + " y") == [True]
    with pytest.raises(DataError, match="at least 3"):
        EvalIndex.from_texts([LONG], ngram=2)


def test_matches_a_naive_check_on_random_text():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(30)]
    evaluation = [" ".join(rng.choices(vocab, k=rng.randint(3, 8))) for _ in range(40)]
    lines = [" ".join(rng.choices(vocab, k=rng.randint(1, 20))) for _ in range(400)]
    index = EvalIndex.from_texts(evaluation, ngram=13)
    naive = [any(f" {text} " in f" {line} " for text in evaluation) for line in lines]
    assert index.contaminated(lines).tolist() == naive
    assert any(naive) and not all(naive)


def test_every_reader_format(tmp_path):
    (tmp_path / "a.txt").write_text("first text\n\nsecond text\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text('sentence,label\n"a, quoted text",1\n', encoding="utf-8")
    (tmp_path / "c.tsv").write_text("sentence1\tsentence2\tlabel\tid\none\ttwo\t0\tx\n", encoding="utf-8")
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "json text", "label": 1}) + "\n", encoding="utf-8")
    assert list(evaluation_texts(tmp_path / "a.txt")) == ["first text", "second text"]
    assert list(evaluation_texts(tmp_path / "b.csv")) == ["a, quoted text"]
    assert sorted(evaluation_texts(tmp_path / "c.tsv")) == ["one", "two"]
    assert list(evaluation_texts(tmp_path / "d.jsonl")) == ["json text"]
    squad = list(evaluation_texts(tmp_path / squad_dir(tmp_path)))
    assert "who was the captain of the ship ?" in squad and any("aahab" in text for text in squad)
    conll = list(evaluation_texts(tmp_path / conll_dir(tmp_path)))
    assert conll[0] == "ahab sat in nantucket ." and len(conll) == 48  # valid + test, not train
    sst2 = sst2_dir(tmp_path / "glue", n_train=4, n_dev=3)
    assert len(list(evaluation_texts(tmp_path / sst2))) == 3  # the dev split, never train
    assert len(list(evaluation_texts(tmp_path / "glue"))) == 3  # a GLUE root: each task folder in it


def test_parquet_is_read(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pyarrow.table({"question": ["parquet text"], "label": [0]}), tmp_path / "e.parquet")
    assert list(evaluation_texts(tmp_path / "e.parquet")) == ["parquet text"]


def test_unreadable_sources_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_exclusion([tmp_path / "missing.tsv"])
    (tmp_path / "no_text.csv").write_text("id,label\n1,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="no text column"):
        build_exclusion([tmp_path / "no_text.csv"])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="cannot tell what evaluation data"):
        build_exclusion([tmp_path / "empty_dir"])


def test_prepare_drops_and_records_contaminated_lines(tmp_path, tiny_tokenizer_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"the ship sailed at dawn\n{LONG}\nthe whale was white\nnothing to see here\n", encoding="utf-8")
    (tmp_path / "eval.txt").write_text("The whale was white.\n" + LONG.upper() + "\n", encoding="utf-8")
    meta = prepare(PrepareConfig(str(tiny_tokenizer_dir), (str(corpus),), str(tmp_path / "out"), min_len=1,
                                 exclude=(str(tmp_path / "eval.txt"),)))  # fmt: skip
    assert meta["excluded"]["dropped"] == {str(corpus): 2} and meta["excluded"]["kept"] == {str(corpus): 2}
    assert meta["excluded"]["evaluation_texts"] == 2 and meta["lines_skipped"] == 2
    clean = prepare(PrepareConfig(str(tiny_tokenizer_dir), (str(corpus),), str(tmp_path / "all"), min_len=1))
    assert clean["excluded"] is None and clean["n_sequences"] == meta["n_sequences"] + 2


def test_prepare_refuses_a_missing_exclude_path(tmp_path, tiny_tokenizer_dir):
    (tmp_path / "c.txt").write_text("text\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--exclude path not found"):
        PrepareConfig(str(tiny_tokenizer_dir), (str(tmp_path / "c.txt"),), str(tmp_path / "o"), exclude=("nope",))
    flags = ["--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"), "--exclude", "nope"]
    result = CliRunner().invoke(app, ["prepare", "--teacher", str(tiny_tokenizer_dir), *flags])
    assert result.exit_code == 2 and "--exclude path not found: nope" in result.output
    assert "Traceback" not in result.output


def test_task_distill_drops_augmented_rows_that_hold_evaluation_text(tmp_path):
    from distilkit.train.finetune import FinetuneConfig, finetune
    from distilkit.train.task_distill import TaskDistillConfig, task_distill

    encoder = base_encoder(tmp_path / "enc")
    data = sst2_dir(tmp_path, n_train=16, n_dev=8)
    finetune(FinetuneConfig(model=encoder, task="sst2", data=data, out=str(tmp_path / "t"), max_steps=1, **FAST))
    train_texts = [line.split("\t")[0] for line in (tmp_path / "SST-2" / "train.tsv").read_text().splitlines()[1:]]
    (tmp_path / "eval.txt").write_text(train_texts[0] + "\n", encoding="utf-8")  # held-out copy of one input
    task_distill(TaskDistillConfig(teacher=str(tmp_path / "t"), student=encoder, task="sst2", data=data,
                                   out=str(tmp_path / "s"), augment=2, exclude=(str(tmp_path / "eval.txt"),),
                                   max_steps=1, **FAST))  # fmt: skip
    info = json.loads((tmp_path / "s" / "distilkit_task.json").read_text())["distillation"]["unlabeled"]
    dropped = info["excluded"]["dropped"]["--augment"]
    assert dropped >= 1 and info["augmented_rows"] == 32 - dropped
    with pytest.raises(ConfigError, match="give one of them"):
        TaskDistillConfig(teacher=str(tmp_path / "t"), student=encoder, task="sst2", data=data,
                          out=str(tmp_path / "x"), exclude=(str(tmp_path / "eval.txt"),))  # fmt: skip
