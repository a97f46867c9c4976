"""A split of a benchmark as examples: routes a task record to its reader (GLUE, SQuAD, CoNLL or the `datasets`
hub), carves the selection split out of train, and draws seeded samples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from distilkit.errors import ConfigError, DataError
from distilkit.tasks.readers import glue, ner, squad
from distilkit.tasks.readers.schemes import resolve_scheme
from distilkit.tasks.registry import TaskSpec

HUB_PREFIX = "hf:"  # --data hf:NAME reads the task from a `datasets` hub name instead of local files
SELECTION = "selection"  # the split carved from train for every choice (epochs, lr, layers, corpus) — #15


def read_examples(spec: TaskSpec, data: str | Path, split: str, heldout_titles: Sequence[str] | None = None) -> list:
    """Examples of one split: glue.Example, squad.SquadExample or ner.NerSentence (the record's tag column, its
    tags checked against the record's scheme, or the scheme detected; IOB1 read as IOB2).

    data: the task's folder (GLUE task dir or GLUE root, the SQuAD folder or JSON file, the CoNLL folder), or
    "hf:NAME" for a `datasets` hub dataset. SQuAD without a train file: "train" and "dev" are an article-level
    split of the dev file whose held-out titles are `heldout_titles` (see `squad.squad_article_split`)."""
    if str(data).startswith(HUB_PREFIX):
        from distilkit.tasks.readers.hub import read_hub

        return read_hub(spec, str(data)[len(HUB_PREFIX) :], split)
    if spec.benchmark == "squad":
        return squad.read_squad_split(spec, Path(data), split, heldout_titles)
    if spec.benchmark == "conll":
        path = ner.conll_file(spec, Path(data), split)
        placed = list(ner.iter_conll(path, spec.tag_column))
        if not placed:
            raise DataError(f"{path} holds no sentences — expected CoNLL columns (word ... tag)")
        scheme = resolve_scheme(((s.tags, f"line {line}") for line, s in placed), spec.tag_scheme, str(path))
        return [ner.as_iob2(sentence, scheme) for _, sentence in placed]
    return glue.read_glue(spec, data, split)


def carve_selection(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, selection): a seeded `fraction` of the training examples held out to choose settings on, so the
    reported split is scored once per pinned configuration. SQuAD questions are held out by article (a question's
    context must not be trained on); other examples one by one. File order is kept in both parts."""
    keys = [getattr(example, "title", index) for index, example in enumerate(examples)]
    groups = list(dict.fromkeys(keys))
    count = max(1, round(fraction * len(groups)))
    held = set(random.Random(seed).sample(groups, count)) if len(groups) > 1 else set()
    train = [example for example, key in zip(examples, keys, strict=True) if key not in held]
    return train, [example for example, key in zip(examples, keys, strict=True) if key in held]


def read_split(
    spec: TaskSpec, data: str | Path, split: str, heldout_titles: Sequence[str] | None = None,
    selection: tuple[float, int] | None = None,
) -> list:  # fmt: skip
    """read_examples, where `selection` = (fraction, seed) carves train into "train" and "selection" parts."""
    if split == SELECTION and selection is None:
        raise ConfigError("the selection split is carved from train by --selection-fraction: this model was "
                          "trained without one")  # fmt: skip
    if selection is None or split not in ("train", SELECTION):
        return read_examples(spec, data, split, heldout_titles)
    kept, held = carve_selection(read_examples(spec, data, "train", heldout_titles), *selection)
    return kept if split == "train" else held


def subsample(items: list, n: int | None, seed: int) -> list:
    """n items drawn with random.Random(seed), kept in file order; all of them when n is None or ≥ len."""
    keep = sample_indices(len(items), n, seed)
    return items if keep is None else [items[index] for index in keep]


def sample_indices(count: int, n: int | None, seed: int) -> list[int] | None:
    """The sorted indices `subsample` keeps of `count` items; None when it keeps them all."""
    if n is None or n >= count:
        return None
    return sorted(random.Random(seed).sample(range(count), n))
