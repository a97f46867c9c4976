"""Fuzz what `finetune`, `task-distill` and `evaluate` read (GLUE TSV, SQuAD JSON, CoNLL columns) — each file
either parses into valid examples or is refused with one line naming the file; then a few whole commands."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from distilkit.errors import DistilkitError
from distilkit.tasks.data import read_examples
from fuzzcount import CASES

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=30)
row = st.lists(st.one_of(cell, st.sampled_from(["0", "1", "2", "-1", "x", "", "3.5"])), min_size=0, max_size=4)
tsv_bodies = st.one_of(
    st.lists(row, max_size=12).map(lambda rows: "\n".join("\t".join(r) for r in rows).encode()),
    st.binary(max_size=300),
)


def _outcome(read, source: Path) -> str:
    try:
        examples = read()
    except DistilkitError as exc:
        assert "\n" not in str(exc)
        assert source.name in str(exc) or source.parent.name in str(exc), str(exc)
        return "rejected"
    assert isinstance(examples, list)
    return "parsed"


@FUZZ
@given(body=tsv_bodies, header=st.booleans())
def test_glue_sst2_files(tmp_path_factory, body, header):
    root = tmp_path_factory.mktemp("sst2")
    source = root / "train.tsv"
    source.write_bytes((b"sentence\tlabel\n" if header else b"") + body)
    if _outcome(lambda: read_examples("sst2", root, "train"), source) == "parsed":
        examples = read_examples("sst2", root, "train")
        assert all(e.label in (0, 1) for e in examples)  # only labels of the label set get through
    CASES["finetune/evaluate: GLUE"] += 1


@FUZZ
@given(body=tsv_bodies)
def test_glue_stsb_regression_files(tmp_path_factory, body):
    root = tmp_path_factory.mktemp("stsb")
    source = root / "dev.tsv"
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    source.write_bytes(header.encode() + body)
    _outcome(lambda: read_examples("stsb", root, "dev"), source)
    CASES["finetune/evaluate: GLUE"] += 1


squad_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 50), cell),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(cell, children, max_size=3)),
    max_leaves=12,
)
squad_docs = st.one_of(
    squad_values,
    st.builds(
        lambda title, context, question, start, text: {
            "version": "1.1",
            "data": [
                {
                    "title": title,
                    "paragraphs": [
                        {
                            "context": context,
                            "qas": [
                                {"id": "q1", "question": question, "answers": [{"answer_start": start, "text": text}]}
                            ],
                        }
                    ],
                }
            ],
        },
        cell,
        cell,
        cell,
        st.one_of(st.integers(-3, 40), cell),
        cell,
    ),
)


@FUZZ
@given(doc=squad_docs, broken=st.booleans())
def test_squad_json_files(tmp_path_factory, doc, broken):
    root = tmp_path_factory.mktemp("squad")
    source = root / "dev-v1.1.json"
    text = json.dumps(doc)
    source.write_text(text[: len(text) // 2] if broken else text)
    _outcome(lambda: read_examples("squad", source, "dev"), source)
    CASES["finetune/evaluate: SQuAD"] += 1


conll_line = st.one_of(
    st.builds(
        lambda w, t: f"{w} NNP B-NP {t}",
        st.sampled_from(["EU", "rejects", "German", "x"]),
        st.sampled_from(["O", "B-ORG", "I-MISC", "I-PER", "B-", "weird"]),
    ),
    st.just(""),
    st.just("-DOCSTART- -X- -X- O"),
    cell,
)


@FUZZ
@given(lines=st.lists(conll_line, max_size=20))
def test_conll_files(tmp_path_factory, lines):
    root = tmp_path_factory.mktemp("conll")
    source = root / "test.txt"
    source.write_text("\n".join(lines) + "\n")
    _outcome(lambda: read_examples("conll2003", root, "test"), source)
    CASES["finetune/evaluate: CoNLL"] += 1


@pytest.mark.parametrize(
    ("case", "fragment"),
    [("missing-dir", "does not exist"), ("labels-outside", "label"), ("wrong-columns", "column"), ("empty", "empty")],
)
def test_finetune_and_evaluate_commands_refuse_bad_files(tmp_path, case, fragment):
    from transformers import AutoModelForSequenceClassification

    from distilkit.cli import app
    from tiny import make_model, make_tokenizer, tiny_config

    make_model(tmp_path / "model", "bert", mlm=False, layers=1)
    config = tiny_config(layers=1)
    config.num_labels = 2
    classifier = AutoModelForSequenceClassification.from_config(config)
    classifier.save_pretrained(tmp_path / "classifier")
    make_tokenizer(tmp_path / "classifier")
    data = tmp_path / "SST-2"
    data.mkdir()
    content = {
        "labels-outside": "sentence\tlabel\nthe sea\t7\n",
        "wrong-columns": "sentence\tlabel\nthe sea\t1\textra\tcells\n",
        "empty": "",
    }.get(case)
    if case == "missing-dir":
        data = tmp_path / "nowhere"
    else:
        (data / "train.tsv").write_text(content)
        (data / "dev.tsv").write_text(content)
    runner = CliRunner()
    for command in (
        [
            "finetune",
            "--model",
            str(tmp_path / "model"),
            "--task",
            "sst2",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
        ],
        ["evaluate", "--model", str(tmp_path / "classifier"), "--task", "sst2", "--data", str(data)],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines[-1].startswith("error:") and fragment in lines[-1].lower(), result.output
        CASES["finetune/evaluate: commands"] += 1
    assert not (tmp_path / "o").exists()
