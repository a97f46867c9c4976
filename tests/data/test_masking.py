"""Dynamic masking: proportions, 80/10/10, special tokens, frequency smoothing, determinism."""

import math

import numpy as np
import pytest
import torch

from distilkit.data.masking import (
    MaskingSpec,
    mask_flat_tokens,
    mask_sequences,
    mask_token_id,
    selection_weights,
    step_generator,
)
from distilkit.errors import DataError

VOCAB = 50
SPECIAL = [0, 1, 2, 3, 4]
MASK_ID = 4


def _stream(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, size=n)
    ids[::10] = 2  # a special token every 10 positions
    return torch.from_numpy(ids)


def test_selection_weights_smoothing_and_specials():
    counts = np.array([100, 0, 50, 0, 0, 1000, 10])
    weights = selection_weights(counts, [0, 2], smoothing=0.7)
    assert weights[0] == 0 and weights[2] == 0
    assert weights[5].item() == pytest.approx(1000**-0.7)
    assert weights[1].item() == pytest.approx(1.0)  # unseen tokens count as 1
    assert weights[6] > weights[5]  # rarer → more likely to be picked per occurrence


def test_fifteen_percent_of_maskable_tokens_are_targets_and_no_special():
    ids = _stream()
    weights = selection_weights(np.ones(VOCAB), SPECIAL, 0.7)
    spec = MaskingSpec()
    masked, labels = mask_flat_tokens(
        ids, weights, mask_id=MASK_ID, vocab_size=VOCAB, spec=spec, generator=step_generator(1, 0)
    )
    targets = labels != -100
    n_maskable = int((ids != 2).sum())
    assert int(targets.sum()) == math.ceil(0.15 * n_maskable)
    assert not targets[ids == 2].any()
    assert torch.equal(labels[targets], ids[targets])
    assert torch.equal(masked[~targets], ids[~targets])


def test_eighty_ten_ten_split():
    ids = _stream(100_000)
    weights = selection_weights(np.ones(VOCAB), SPECIAL, 0.7)
    masked, labels = mask_flat_tokens(
        ids, weights, mask_id=MASK_ID, vocab_size=VOCAB, spec=MaskingSpec(), generator=step_generator(3, 7)
    )
    targets = labels != -100
    n = int(targets.sum())
    as_mask = int((masked[targets] == MASK_ID).sum()) / n
    kept = int((masked[targets] == ids[targets]).sum()) / n
    # Random replacements are ordinary ids (45 of them): never [MASK], the original id 1 time in 45.
    assert as_mask == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / (VOCAB - len(SPECIAL)), abs=0.01)


def test_frequency_smoothing_prefers_rare_tokens():
    ids = torch.tensor([5] * 9000 + [6] * 1000)
    counts = np.bincount(ids.numpy(), minlength=VOCAB)
    weights = selection_weights(counts, SPECIAL, 0.7)
    _, labels = mask_flat_tokens(
        ids, weights, mask_id=MASK_ID, vocab_size=VOCAB, spec=MaskingSpec(), generator=step_generator(0, 0)
    )
    rate_frequent = float((labels[ids == 5] != -100).float().mean())
    rate_rare = float((labels[ids == 6] != -100).float().mean())
    assert rate_rare > 2 * rate_frequent
    unsmoothed = selection_weights(counts, SPECIAL, 0.0)
    _, labels = mask_flat_tokens(
        ids, unsmoothed, mask_id=MASK_ID, vocab_size=VOCAB, spec=MaskingSpec(), generator=step_generator(0, 0)
    )
    assert float((labels[ids == 6] != -100).float().mean()) == pytest.approx(0.15, abs=0.03)


def test_masking_depends_only_on_seed_and_step_not_on_batch_split():
    weights = selection_weights(np.ones(VOCAB), SPECIAL, 0.7)
    sequences = [_stream(n, seed=n) for n in (7, 30, 12, 55)]
    kwargs = {"mask_id": MASK_ID, "vocab_size": VOCAB, "spec": MaskingSpec()}
    first, labels1 = mask_sequences(sequences, weights, generator=step_generator(5, 9), **kwargs)
    again, labels2 = mask_sequences(sequences, weights, generator=step_generator(5, 9), **kwargs)
    other, _ = mask_sequences(sequences, weights, generator=step_generator(5, 10), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(labels1, labels2, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert [len(s) for s in first] == [7, 30, 12, 55]


def test_nothing_to_mask():
    ids = torch.tensor([2, 3, 2])
    weights = selection_weights(np.ones(VOCAB), SPECIAL, 0.7)
    masked, labels = mask_flat_tokens(
        ids, weights, mask_id=MASK_ID, vocab_size=VOCAB, spec=MaskingSpec(), generator=step_generator(0, 0)
    )
    assert torch.equal(masked, ids) and (labels == -100).all()


def test_random_replacements_are_ordinary_ids_of_the_models_vocabulary():
    """Never a special token (a <pad> would shift RoBERTa's positions) and never past the model's embeddings."""
    ids = _stream(50_000)
    weights = selection_weights(np.ones(VOCAB), [1, 2, 3, 17, 30], 0.7)  # specials need not be the first ids
    spec = MaskingSpec(mask_frac=0.0, random_frac=1.0)
    masked, labels = mask_flat_tokens(ids, weights, mask_id=30, vocab_size=40, spec=spec,
                                      generator=step_generator(0, 1))  # fmt: skip
    replaced = masked[labels != -100]
    assert set(replaced.tolist()) == set(range(40)) - {1, 2, 3, 17, 30}


def test_data_without_a_mask_token_is_refused_in_one_line():
    assert mask_token_id({"special_ids": {"mask": 250001}}) == 250001
    with pytest.raises(DataError, match="no mask token") as caught:
        mask_token_id({"special_ids": {"mask": None, "pad": 1}, "tokenizer": "my-teacher"})
    assert "my-teacher" in str(caught.value) and "\n" not in str(caught.value)
