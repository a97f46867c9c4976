"""Length-grouped global batches: complete, deterministic, less padding; dynamic padding."""

import numpy as np
import pytest
import torch

from distilkit.data.dataset import BatchPlan, TokenDataset, micro_batches, pad_batch
from distilkit.errors import ConfigError
from tiny import write_token_data


def _lengths(n=1000, seed=0):
    return np.random.default_rng(seed).integers(5, 128, size=n)


def test_each_epoch_is_a_permutation_without_repeats():
    plan = BatchPlan(_lengths(), global_batch=32, seed=1)
    batches = plan.epoch(0)
    assert len(batches) == plan.batches_per_epoch() == 1000 // 32
    flat = np.concatenate(batches)
    assert len(flat) == len(set(flat.tolist())) == 31 * 32


def test_plan_is_deterministic_and_varies_by_epoch():
    plan = BatchPlan(_lengths(), 32, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(plan.epoch(3), plan.epoch(3), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(plan.epoch(3), plan.epoch(4), strict=True))


def test_grouping_reduces_padding():
    lengths = _lengths(4096)

    def padded(plan):
        return sum(len(b) * lengths[b].max() for b in plan.epoch(0))

    grouped = padded(BatchPlan(lengths, 32, seed=0, grouped=True))
    plain = padded(BatchPlan(lengths, 32, seed=0, grouped=False))
    assert grouped < 0.7 * plain


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        BatchPlan(np.array([5, 6, 7]), global_batch=8, seed=0)


def test_micro_batches_split_contiguously():
    chunks = micro_batches(np.arange(10), 4)
    assert [len(c) for c in chunks] == [3, 3, 2, 2]
    assert np.array_equal(np.concatenate(chunks), np.arange(10))


def test_pad_batch():
    ids, mask = pad_batch([torch.tensor([2, 7, 3]), torch.tensor([2, 3])], pad_id=0)
    assert ids.tolist() == [[2, 7, 3], [2, 3, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_token_dataset_reads_prepared_format(tmp_path):
    write_token_data(tmp_path / "data", n_sequences=20)
    data = TokenDataset(tmp_path / "data")
    assert len(data) == 20
    assert data[0][0] == 2 and data[0][-1] == 3
    assert data.lengths.sum() == data.meta["n_tokens"]
