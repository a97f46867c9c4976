"""Data augmentation for task distillation (`task-distill --augment N`): N perturbed copies of every training
input, labelled by the teacher's soft targets only, so the student sees the teacher's function on far more
inputs than the labelled set holds — the idea of TinyBERT's task-specific augmentation (Jiao et al. 2020, §3.2)
and of Tang et al. (2019), without the masked-LM or word vectors they draw replacements from (none is needed:
the teacher labels whatever it is given; the replacements only have to be plausible words).

Each copy of a text is perturbed word by word (whitespace words): dropped with probability `drop`, replaced by
a word drawn from the training text (so by frequency) with probability `replace`, and then with probability
`swap` two neighbouring words trade places. A pair task's copy is one of: both texts perturbed (half the
copies), the first text with another example's second text (a mismatched pair, 1 in 5), or the first text
with a perturbed copy of itself (a near-paraphrase, 3 in 10) — so the augmented pairs span unrelated, related
and near-identical inputs, where the labelled pairs of most tasks cluster in between.
Everything is drawn from one seeded generator: the same examples and seed give the same copies.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from distilkit.tasks.readers.glue import Example

VOCAB_WORDS = 200_000  # words of the training text kept to draw replacements from


@dataclass(frozen=True)
class Perturbation:
    """Per-word probabilities of one perturbed copy (see the module docstring)."""

    drop: float = 0.1
    replace: float = 0.1
    swap: float = 0.3


def word_pool(examples: Sequence[Example], limit: int = VOCAB_WORDS) -> list[str]:
    """Up to `limit` words of the examples' texts, in order, repeats kept: drawing uniformly from it draws
    words by their frequency in the training text."""
    pool: list[str] = []
    for example in examples:
        for text in (example.text, example.text_pair):
            if text:
                pool.extend(text.split()[: limit - len(pool)])
        if len(pool) >= limit:
            break
    return pool


def perturb(text: str, pool: Sequence[str], rng: random.Random, how: Perturbation = Perturbation()) -> str:
    """One perturbed copy of `text` (never empty: a copy whose words were all dropped is the text itself)."""
    words: list[str] = []
    for word in text.split():
        draw = rng.random()
        if draw < how.drop:
            continue
        words.append(rng.choice(pool) if draw < how.drop + how.replace and pool else word)
    if len(words) > 2 and rng.random() < how.swap:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words) or text


def augment(examples: Sequence[Example], copies: int, seed: int = 42) -> Iterator[Example]:
    """`copies` unlabeled perturbed copies of each example (label None), copy by copy over the whole set."""
    if copies <= 0 or not examples:
        return
    rng = random.Random(seed)
    pool = word_pool(examples)
    for _ in range(copies):
        for example in examples:
            if example.text_pair is None:
                yield Example(perturb(example.text, pool, rng), None, None)
                continue
            draw = rng.random()
            if draw < 0.5:
                first, second = perturb(example.text, pool, rng), perturb(example.text_pair, pool, rng)
            elif draw < 0.7:
                first, second = example.text, examples[rng.randrange(len(examples))].text_pair or example.text_pair
            else:
                first, second = example.text, perturb(example.text, pool, rng)
            yield Example(first, second, None)
