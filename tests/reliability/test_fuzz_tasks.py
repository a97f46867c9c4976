"""Fuzz what `finetune`, `task-distill` and `evaluate` read (GLUE TSV, SQuAD JSON, CoNLL columns) — each file
either parses into valid examples or is refused with one line naming the file, which the commands turn into exit
code 2; well-formed files of each format parse into the examples they hold; then a few whole commands."""

import json
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from distilkit.cli.app import run_command
from distilkit.errors import DistilkitError
from distilkit.tasks.readers.glue import Example
from distilkit.tasks.readers.ner import NerSentence, to_iob2
from distilkit.tasks.readers.splits import read_examples
from distilkit.tasks.registry import task_spec
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
        assert_command_exits_2(read)
        return "rejected"
    assert isinstance(examples, list)
    return "parsed"


def assert_command_exits_2(read) -> None:
    """A refused file ends a command as every task command runs its work (cli.app.run_command): exit code 2."""
    with pytest.raises(typer.Exit) as exited:
        run_command(read, progress=False)
    assert exited.value.exit_code == 2


# Well-formed files: the generated content is known, so the reader must give exactly it back.
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz'.,!?", min_size=1, max_size=8)
sentences = st.lists(words, min_size=1, max_size=6).map(" ".join)


@FUZZ
@given(rows=st.lists(st.tuples(sentences, st.sampled_from(["0", "1"])), min_size=1, max_size=12))
def test_well_formed_glue_sst2_files_parse(tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("sst2")
    (root / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))
    assert read_examples(task_spec("sst2"), root, "train") == [Example(text, None, int(label)) for text, label in rows]
    CASES["finetune/evaluate: GLUE"] += 1


@FUZZ
@given(rows=st.lists(st.tuples(sentences, sentences, st.integers(0, 5000)), min_size=1, max_size=12))
def test_well_formed_glue_stsb_files_parse(tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("stsb")
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    lines = [f"{i}\tmain\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{score / 1000}\n" for i, (a, b, score) in enumerate(rows)]
    (root / "dev.tsv").write_text(header + "".join(lines))
    assert read_examples(task_spec("stsb"), root, "dev") == [Example(a, b, score / 1000) for a, b, score in rows]
    CASES["finetune/evaluate: GLUE"] += 1


@st.composite
def squad_questions(draw) -> tuple[str, list[tuple[str, int]]]:
    """A context and 1–3 answers, each a non-empty stretch of it at its offset."""
    context = draw(sentences)
    answers = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(context) - 1))
        end = draw(st.integers(start + 1, len(context)))
        answers.append((context[start:end], start))
    return context, answers


@FUZZ
@given(question=squad_questions(), title=sentences)
def test_well_formed_squad_files_parse(tmp_path_factory, question, title):
    context, answers = question
    source = tmp_path_factory.mktemp("squad") / "dev-v1.1.json"
    qas = [{"id": f"q{i}", "question": f"which {i}?", "answers": [{"text": text, "answer_start": start}]}
           for i, (text, start) in enumerate(answers)]  # fmt: skip
    doc = {"version": "1.1", "data": [{"title": title, "paragraphs": [{"context": context, "qas": qas}]}]}
    source.write_text(json.dumps(doc))
    examples = read_examples(task_spec("squad"), source, "dev")
    assert [(e.id, e.title, e.context, e.answers, e.answer_starts) for e in examples] == [
        (f"q{i}", title, context, (text,), (start,)) for i, (text, start) in enumerate(answers)
    ]
    CASES["finetune/evaluate: SQuAD"] += 1


tagged = st.tuples(
    words.filter(lambda w: w != "-DOCSTART-"), st.sampled_from(["O", "B-ORG", "I-ORG", "I-PER", "I-MISC"])
)


@FUZZ
@given(sentence_list=st.lists(st.lists(tagged, min_size=1, max_size=6), min_size=1, max_size=5))
def test_well_formed_conll_files_parse(tmp_path_factory, sentence_list):
    root = tmp_path_factory.mktemp("conll")
    blocks = ["".join(f"{word} NNP I-NP {tag}\n" for word, tag in sentence) for sentence in sentence_list]
    (root / "test.txt").write_text("-DOCSTART- -X- -X- O\n\n" + "\n".join(blocks))
    expected = [NerSentence(tuple(w for w, _ in s), tuple(to_iob2([t for _, t in s]))) for s in sentence_list]
    assert read_examples(task_spec("conll2003"), root, "test") == expected
    CASES["finetune/evaluate: CoNLL"] += 1


@FUZZ
@given(body=tsv_bodies, header=st.booleans())
def test_glue_sst2_files(tmp_path_factory, body, header):
    root = tmp_path_factory.mktemp("sst2")
    source = root / "train.tsv"
    source.write_bytes((b"sentence\tlabel\n" if header else b"") + body)
    if _outcome(lambda: read_examples(task_spec("sst2"), root, "train"), source) == "parsed":
        examples = read_examples(task_spec("sst2"), root, "train")
        assert all(e.label in (0, 1) for e in examples)  # only labels of the label set get through
    CASES["finetune/evaluate: GLUE"] += 1


@FUZZ
@given(body=tsv_bodies)
def test_glue_stsb_regression_files(tmp_path_factory, body):
    root = tmp_path_factory.mktemp("stsb")
    source = root / "dev.tsv"
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    source.write_bytes(header.encode() + body)
    _outcome(lambda: read_examples(task_spec("stsb"), root, "dev"), source)
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
    _outcome(lambda: read_examples(task_spec("squad"), source, "dev"), source)
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
    _outcome(lambda: read_examples(task_spec("conll2003"), root, "test"), source)
    CASES["finetune/evaluate: CoNLL"] += 1


tag = st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-LOC", "I-LOC", "NNP", "VBZ", ".", "B-", "I-NP"])


@FUZZ
@given(tag_lists=st.lists(st.lists(tag, min_size=1, max_size=6), min_size=1, max_size=5), column=st.integers(-3, 3))
def test_own_conll_tag_columns(tmp_path_factory, tag_lists, column):
    """Any tags in any column of a CoNLL file: read with a detected scheme, or refused with one line (#18)."""
    from distilkit.tasks.readers.own_data import OwnData, Reader

    source = tmp_path_factory.mktemp("tags") / "train.conll"
    source.write_text("\n\n".join("\n".join(f"w{i} {t} {t}" for i, t in enumerate(tags)) for tags in tag_lists))

    def read() -> list:
        reader = Reader(OwnData(train=str(source), tag_column=str(column)), task_spec("token-classification"), "train")
        examples = [example for chunk in reader.chunks(None) for example in chunk]
        assert reader.scheme() in ("iob1", "iob2", "bioes", "plain")
        return examples

    if _outcome(read, source) == "parsed":
        assert [list(e.tags) for e in read()] == tag_lists and column not in (0, -3)
    CASES["finetune/evaluate: CoNLL"] += 1


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing-dir", "does not exist"),
        ("labels-outside", "label"),
        ("wrong-columns", "column"),
        ("empty", "empty"),
        ("well-formed", None),
    ],
)
def test_finetune_and_evaluate_commands_refuse_bad_files(tmp_path, case, fragment):
    """Each bad file: exit code 2 and one "error:" line, nothing written. The well-formed file: both commands run."""
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
        "well-formed": "sentence\tlabel\nthe sea\t1\na whale\t0\n",
    }.get(case)
    if case == "missing-dir":
        data = tmp_path / "nowhere"
    else:
        (data / "train.tsv").write_text(content)
        (data / "dev.tsv").write_text(content)
    runner = CliRunner()
    finetune = ["finetune", "--model", str(tmp_path / "model"), "--task", "sst2", "--data", str(data),
                "--out", str(tmp_path / "o"), "--max-steps", "1", "--device", "cpu"]  # fmt: skip
    evaluate = ["evaluate", "--model", str(tmp_path / "classifier"), "--task", "sst2", "--data", str(data)]
    for command in (finetune, evaluate):
        result = runner.invoke(app, command)
        if fragment is None:
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines[-1].startswith("error:") and fragment in lines[-1].lower(), result.output
        CASES["finetune/evaluate: commands"] += 1
    assert (tmp_path / "o").exists() == (fragment is None)
