"""Fuzz the own-data readers (`--train/--dev/--test` CSV, TSV, JSON Lines, token JSONL): each file either
encodes into features whose labels lie in the label set read from the training file, or is refused with one
line naming the file, which the commands turn into exit code 2; well-formed files encode into the labels they
hold."""

import json

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilkit.cli.app import run_command
from distilkit.errors import DistilkitError
from distilkit.tasks.data import encode_split
from distilkit.tasks.readers.own_data import OwnData, discover_labels
from distilkit.tasks.registry import task_spec
from fuzzcount import CASES

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
label = st.one_of(st.sampled_from(["pos", "neg", "0", "1", "2", "-1", "3.5", "", "nan", "1e3", "True"]), cell)
value = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), cell)


def _delimited(rows: list[list[str]], sep: str) -> bytes:
    return "\n".join(sep.join(row) for row in rows).encode()


clean = st.text(alphabet="abc xyz.", min_size=1, max_size=12)  # quoting-free text: most files parse
LABEL_SETS = (["pos", "neg"], ["0", "1", "2"], ["0.5", "1.25", "3"])  # one kind per file, as real files have
bad_row = st.lists(st.one_of(cell, label), min_size=0, max_size=4)


@st.composite
def tables(draw) -> list[list[str]]:
    """Rows with the labels of one set, a few of them broken now and then."""
    labels = draw(st.sampled_from(LABEL_SETS))
    good_row = st.tuples(clean, st.sampled_from(labels)).map(list)
    broken = draw(st.booleans())
    return draw(st.lists(st.one_of(good_row, bad_row) if broken else good_row, max_size=10))


json_rows = st.lists(
    st.one_of(
        st.fixed_dictionaries({"text": clean, "label": st.sampled_from(["pos", "neg", 0, 1, 0.5])}),
        st.fixed_dictionaries({"text": clean, "label": st.sampled_from(["pos", "neg", 0, 1, 0.5])}),
        st.dictionaries(st.sampled_from(["text", "sentence", "text_pair", "label", "x"]), value, max_size=4),
        value,
        st.lists(value, max_size=2),
    ),
    max_size=8,
)
json_lines = st.one_of(
    json_rows.map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    json_rows.map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    st.binary(max_size=200),
)


def _encode(task: str, own: OwnData, tokenizer, discover: bool = False):
    """Encode the training file as finetune does (prepare_own_data: the label set found while encoding, one pass),
    or with the label set read by discover_labels first."""
    spec = task_spec(task)
    if discover and spec.kind in ("classification", "token-classification"):
        spec = spec.with_labels(discover_labels(own, spec))
    return encode_split(spec, own, "train", tokenizer, 32)


def _outcome(task: str, own: OwnData, tokenizer, source_name: str) -> str:
    try:
        data = _encode(task, own, tokenizer)
        spec = data.spec
    except DistilkitError as error:
        message = str(error)
        assert "\n" not in message and source_name in message, message
        # as the commands run their work (cli.app.run_command): a refused file is exit code 2
        with pytest.raises(typer.Exit) as exited:
            run_command(lambda: _encode(task, own, tokenizer), progress=False)
        assert exited.value.exit_code == 2
        with pytest.raises(DistilkitError):  # the label set read on its own refuses the file too
            _encode(task, own, tokenizer, discover=True)
        return "rejected"
    labels = data.features["labels"]
    if spec.kind == "classification":
        assert all(0 <= int(v) < len(spec.labels) for v in labels)
    discovered = _encode(task, own, tokenizer, discover=True)  # two ways to the label set, one encoding
    assert discovered.spec == spec and np.array_equal(_label_array(discovered), _label_array(data))
    return "parsed"


def _label_array(data) -> np.ndarray:
    features = data.features
    return features.rows["labels"] if "labels" in features.rows else features.tokens["labels"]


@FUZZ
@given(rows=tables(), suffix=st.sampled_from([".csv", ".tsv"]), task=st.sampled_from(["classification", "regression"]))
def test_delimited_files(tmp_path_factory, task_tokenizer, rows, suffix, task):
    source = tmp_path_factory.mktemp("own") / f"train{suffix}"
    source.write_bytes(_delimited([["text", "label"], *rows], "," if suffix == ".csv" else "\t"))
    _outcome(task, OwnData(train=str(source)), task_tokenizer, source.name)
    CASES["own data: csv/tsv"] += 1


@FUZZ
@given(body=json_lines, task=st.sampled_from(["classification", "regression"]))
def test_json_lines_files(tmp_path_factory, task_tokenizer, body, task):
    source = tmp_path_factory.mktemp("own") / "train.jsonl"
    source.write_bytes(body)
    _outcome(task, OwnData(train=str(source)), task_tokenizer, source.name)
    CASES["own data: jsonl"] += 1


token_rows = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "tokens": st.lists(cell, max_size=4),
                "tags": st.lists(st.sampled_from(["O", "B-PER", "I-PER", "X"]), max_size=4),
            }
        ),
        st.fixed_dictionaries(
            {
                "tokens": st.lists(clean, max_size=3),
                "tags": st.lists(st.sampled_from(["O", "B-PER", "I-PER", "X"]), max_size=3),
            }
        ),
        st.dictionaries(st.sampled_from(["tokens", "tags"]), value, max_size=2),
    ),
    max_size=6,
)


@FUZZ
@given(rows=token_rows)
def test_token_classification_json_lines(tmp_path_factory, task_tokenizer, rows):
    source = tmp_path_factory.mktemp("own") / "train.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    _outcome("token-classification", OwnData(train=str(source)), task_tokenizer, source.name)
    CASES["own data: token jsonl"] += 1


# Well-formed files: the generated content is known, so the encoded labels must be exactly its labels.
@st.composite
def labelled_rows(draw, task: str) -> tuple[list[tuple[str, str]], list]:
    """Rows (text, label cell) of a well-formed file, and the label each must encode to: for classification the
    index of its class in the sorted label set (integers numerically), for regression its score."""
    if task == "regression":
        rows = draw(st.lists(st.tuples(clean, st.integers(-5000, 5000).map(lambda x: str(x / 1000))), min_size=1))
        return rows, [float(label) for _, label in rows]
    # The first two classes always occur, and neither file order nor string order is the label order.
    names = draw(st.sampled_from([["pos", "neg", "neutral"], ["2", "10", "0", "33"]]))
    rows = draw(st.lists(st.tuples(clean, st.sampled_from(names)), min_size=2, max_size=10))
    rows = [(rows[0][0], names[0]), (rows[1][0], names[1]), *rows[2:]]
    classes = sorted({label for _, label in rows}, key=int if names[0].isdigit() else str)
    return rows, [classes.index(label) for _, label in rows]


@FUZZ
@given(
    data=st.data(),
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]),
    task=st.sampled_from(["classification", "regression"]),
)
def test_well_formed_files_encode_their_labels(tmp_path_factory, task_tokenizer, data, suffix, task):
    rows, expected = data.draw(labelled_rows(task))
    source = tmp_path_factory.mktemp("own") / f"train{suffix}"
    if suffix == ".jsonl":
        cells = [(t, float(label) if task == "regression" else label) for t, label in rows]
        source.write_text("\n".join(json.dumps({"text": t, "label": label}) for t, label in cells), encoding="utf-8")
    else:
        source.write_bytes(_delimited([["text", "label"], *map(list, rows)], "," if suffix == ".csv" else "\t"))
    for discover in (False, True):
        encoded = _encode(task, OwnData(train=str(source)), task_tokenizer, discover)
        assert encoded.num_examples == len(rows)
        np.testing.assert_allclose(encoded.features.rows["labels"], expected, rtol=1e-6)
    CASES["own data: csv/tsv" if suffix != ".jsonl" else "own data: jsonl"] += 1


tagged_word = st.tuples(
    st.text(alphabet="abcxyz.", min_size=1, max_size=3), st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])
)


@FUZZ
@given(sentences=st.lists(st.lists(tagged_word, min_size=1, max_size=4), min_size=1, max_size=6))
def test_well_formed_token_files_encode_their_tags(tmp_path_factory, task_tokenizer, sentences):
    sentences = [[("x", "O"), ("y", "B-PER")], *sentences]  # two tags at least
    source = tmp_path_factory.mktemp("own") / "train.jsonl"
    lines = [json.dumps({"tokens": [w for w, _ in s], "tags": [t for _, t in s]}) for s in sentences]
    source.write_text("\n".join(lines), encoding="utf-8")
    seen = {t for s in sentences for _, t in s} - {"O"}
    tags = ["O", *sorted(seen | {f"{prefix}-{t[2:]}" for t in seen for prefix in "BI"})]  # each type completed
    for discover in (False, True):
        encoded = _encode("token-classification", OwnData(train=str(source)), task_tokenizer, discover)
        assert list(encoded.spec.labels) == tags
        labels = encoded.features.tokens["labels"]
        first_pieces = labels[labels != -100]  # each word's first sub-token carries its tag, the others -100
        assert first_pieces.tolist() == [tags.index(t) for s in sentences for _, t in s]
    CASES["own data: token jsonl"] += 1


def test_a_well_formed_file_parses(tmp_path, task_tokenizer):
    """The fuzzers above would pass if everything were refused: a clean file must encode."""
    source = tmp_path / "train.csv"
    source.write_text("text,label\nthe team won,pos\nthe team lost,neg\n", encoding="utf-8")
    assert _outcome("classification", OwnData(train=str(source)), task_tokenizer, source.name) == "parsed"
    pytest.importorskip("hypothesis")
