"""The streamed feature store of your own data: chunked encoding equals one-shot encoding, and the flat store pads
like the list collate."""

from __future__ import annotations

import numpy as np
import pytest

from distilkit.tasks.data import collate, encode, encode_split
from distilkit.tasks.features import Features
from distilkit.tasks.readers.own_data import OwnData, Reader, discover_labels
from distilkit.tasks.readers.splits import subsample
from distilkit.tasks.registry import task_spec
from tasks.test_own_data import ner_rows, pair_rows, qa_rows, write_rows


@pytest.mark.parametrize("task", ["classification", "token-classification", "qa"])
def test_chunked_encoding_equals_one_shot_encoding(tmp_path, task_tokenizer, task):
    if task == "classification":
        own, max_len = OwnData(train=write_rows(tmp_path / "t.csv", pair_rows(23))), 32
    elif task == "token-classification":
        own, max_len = OwnData(train=write_rows(tmp_path / "t.jsonl", ner_rows(23))), 32
    else:
        own, max_len = OwnData(train=write_rows(tmp_path / "t.jsonl", qa_rows(23))), 40
    spec = task_spec(task).with_labels(discover_labels(own, task_spec(task)) if task != "qa" else None)
    label_ids = {name: index for index, name in enumerate(spec.labels)}
    examples = [example for chunk in Reader(own, spec, "train").chunks(label_ids) for example in chunk]
    for sample in (None, 9):
        whole = encode(spec, subsample(examples, sample, 3), task_tokenizer, max_len, stride=16)
        chunked = encode_split(spec, own, "train", task_tokenizer, max_len, 16, sample=sample, seed=3, chunk_rows=4)
        assert set(chunked.features) == set(whole.features) and len(chunked) == len(whole)
        for name in whole.features:
            for row_chunked, row_whole in zip(chunked.features[name], whole.features[name], strict=True):
                assert np.array_equal(row_chunked, row_whole), name
        assert chunked.fingerprint() == whole.fingerprint()
        indices = [0, len(whole) - 1, 5]
        for name, tensor in collate(chunked.features, indices, 0).items():
            assert tensor.equal(collate(whole.features, indices, 0)[name]), name


def test_feature_store_is_flat_and_pads_like_the_list_collate():
    columns = {"input_ids": [[5, 6, 7], [8]], "attention_mask": [[1, 1, 1], [1]], "labels": [[1, -100, 2], [0]],
               "token_type_ids": [[0, 0, 1], [0]]}  # fmt: skip
    features = Features.from_columns(columns)
    assert features.tokens["input_ids"].dtype == np.uint16 and features.offsets.tolist() == [0, 3, 4]
    assert features.constants == {"attention_mask": 1} and features.tokens["token_type_ids"].dtype == np.int8
    assert [row.tolist() for row in features["attention_mask"]] == [[1, 1, 1], [1]]
    batch = features.batch([1, 0], pad_id=9)
    assert batch["input_ids"].tolist() == [[8, 9, 9], [5, 6, 7]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert batch["labels"].tolist() == [[0, -100, -100], [1, -100, 2]] and batch["index"].tolist() == [1, 0]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 1]]
    big = Features.from_columns(
        {"input_ids": [[70000, 1]], "attention_mask": [[1, 1]], "labels": [[0, 0]], "token_type_ids": [[0, 0]]}
    )
    joined = Features.concat([features, big])
    assert joined.tokens["input_ids"].dtype == np.int32 and joined["input_ids"][2].tolist() == [70000, 1]
    assert joined.constants == {"attention_mask": 1} and joined["token_type_ids"][2].tolist() == [0, 0]
    scores = Features.from_columns({"input_ids": [[1], [2, 3]], "labels": [0.5, 2.0]})
    assert scores.batch([0, 1], 0)["labels"].dtype.is_floating_point
