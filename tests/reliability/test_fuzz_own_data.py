"""Fuzz the own-data readers (`--train/--dev/--test` CSV, TSV, JSON Lines, token JSONL): each file either
encodes into features whose labels lie in the label set read from the training file, or is refused with one
line naming the file."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilkit.errors import DistilkitError
from distilkit.tasks.data import task_spec
from distilkit.tasks.own_data import OwnData, discover_labels, encode_split
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


def _outcome(task: str, own: OwnData, tokenizer, source_name: str) -> str:
    try:
        spec = task_spec(task)
        if spec.kind in ("classification", "token"):
            spec = task_spec(task, discover_labels(own, spec))
        data = encode_split(spec, own, "train", tokenizer, 32)
    except DistilkitError as error:
        message = str(error)
        assert "\n" not in message and source_name in message, message
        return "rejected"
    labels = data.features["labels"]
    if spec.kind == "classification":
        assert all(0 <= int(v) < len(spec.labels) for v in labels)
    return "parsed"


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


def test_a_well_formed_file_parses(tmp_path, task_tokenizer):
    """The fuzzers above would pass if everything were refused: a clean file must encode."""
    source = tmp_path / "train.csv"
    source.write_text("text,label\nthe team won,pos\nthe team lost,neg\n", encoding="utf-8")
    assert _outcome("classification", OwnData(train=str(source)), task_tokenizer, source.name) == "parsed"
    pytest.importorskip("hypothesis")
