"""Task datasets for finetune, task-distill and evaluate: which head a task needs, its examples from local
files (or a `datasets` hub name), their model features, length-grouped batches and padding.

The readers and preprocessing of each benchmark live in glue.py, squad.py and ner.py; this module only
routes a task name to them, so the three commands share one dataset implementation.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from distilkit.errors import ConfigError, DataError
from distilkit.tasks import glue, ner, squad
from distilkit.tasks.features import Features
from distilkit.tasks.metrics import TASK_METRICS, canonical_task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

OWN_DATA_TASKS = ("classification", "regression", "token-classification", "qa")
HUB_PREFIX = "hf:"  # --data hf:NAME reads the task from a `datasets` hub name instead of local files
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SQUAD_FILES = {"train": "train-v1.1.json", "dev": "dev-v1.1.json"}
CONLL_FILES = {"train": ("train.txt", "eng.train"), "dev": ("valid.txt", "dev.txt", "eng.testa"),
               "test": ("test.txt", "eng.testb")}  # fmt: skip


@dataclass(frozen=True)
class TaskSpec:
    """What a task needs from a model. kind: "classification", "regression", "qa" or "token".
    labels: class names in id order (GLUE from glue.py; NER from the training file or the model; () otherwise)."""

    name: str
    kind: str
    labels: tuple[str, ...] = ()

    @property
    def head(self) -> str:
        """The transformers head class suffix this task trains."""
        return {"qa": "ForQuestionAnswering", "token": "ForTokenClassification"}.get(
            self.kind, "ForSequenceClassification"
        )

    @property
    def num_labels(self) -> int:
        return {"regression": 1, "qa": 2}.get(self.kind, len(self.labels))

    @property
    def default_max_len(self) -> int:
        return 384 if self.kind == "qa" else 128  # BERT's SQuAD and GLUE settings (Devlin et al. 2019, §4)


def task_spec(name: str, labels: Sequence[str] | None = None) -> TaskSpec:
    """The spec of any accepted task spelling; tasks whose labels come from the data (NER, own classification)
    take `labels` from the caller (the training file or the model)."""
    key = canonical_task(name)  # ConfigError listing the valid tasks
    if key in ("squad", "qa"):
        return TaskSpec(key, "qa")
    if key in ("conll2003", "token-classification"):
        return TaskSpec(key, "token", tuple(labels or ()))
    if key in ("classification", "regression"):
        return TaskSpec(key, key, tuple(labels or ()) if key == "classification" else ())
    spec = glue.get_glue_task(name)
    return TaskSpec(key, "regression" if spec.is_regression else "classification", spec.labels)


def labels_from_data(task: str) -> bool:
    """Whether the task's labels come from its training data (or a trained model), not from a benchmark."""
    return canonical_task(task) in ("conll2003", "token-classification", "classification")


def own_data_only(task: str) -> bool:
    """The problem types that name no benchmark: they read --train/--dev/--test files or --dataset, not --data."""
    return canonical_task(task) in OWN_DATA_TASKS


def valid_tasks() -> str:
    return ", ".join(TASK_METRICS)


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def read_examples(task: str, data: str | Path, split: str, heldout_titles: Sequence[str] | None = None) -> list:
    """Examples of one split: glue.Example, squad.SquadExample or ner.NerSentence (tags in IOB2).

    data: the task's folder (GLUE task dir or GLUE root, the SQuAD folder or JSON file, the CoNLL folder), or
    "hf:NAME" for a `datasets` hub dataset. SQuAD without a train file: "train" and "dev" are an article-level
    split of the dev file whose held-out titles are `heldout_titles` (see `squad_article_split`)."""
    key = canonical_task(task)
    if str(data).startswith(HUB_PREFIX):
        from distilkit.tasks.hub import read_hub

        return read_hub(task, str(data)[len(HUB_PREFIX) :], split)
    if key == "squad":
        return _read_squad_split(Path(data), split, heldout_titles)
    if key == "conll2003":
        sentences = ner.read_conll(conll_file(Path(data), split))
        return [ner.NerSentence(s.words, tuple(ner.to_iob2(s.tags))) for s in sentences]
    return glue.read_glue(task, data, split)


SELECTION = "selection"  # the split carved from train for every choice (epochs, lr, layers, corpus) — #15


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
    task: str, data: str | Path, split: str, heldout_titles: Sequence[str] | None = None,
    selection: tuple[float, int] | None = None,
) -> list:  # fmt: skip
    """read_examples, where `selection` = (fraction, seed) carves train into "train" and "selection" parts."""
    if split == SELECTION and selection is None:
        raise ConfigError("the selection split is carved from train by --selection-fraction: this model was "
                          "trained without one")  # fmt: skip
    if selection is None or split not in ("train", SELECTION):
        return read_examples(task, data, split, heldout_titles)
    kept, held = carve_selection(read_examples(task, data, "train", heldout_titles), *selection)
    return kept if split == "train" else held


def conll_file(root: Path, split: str) -> Path:
    names = CONLL_FILES.get({"validation": "dev", "valid": "dev"}.get(split, split))
    if names is None:
        raise ConfigError(f"CoNLL-2003 has no split {split!r} — choose train, dev or test")
    if not root.is_dir():
        raise DataError(f"CoNLL data dir {root} does not exist — pass the folder holding train.txt/valid.txt/test.txt")
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DataError(f"no {' or '.join(names)} in {root} for the CoNLL {split} split")


def squad_source(data: Path) -> tuple[Path, Path | None]:
    """(dev file, train file or None) of a SQuAD folder; a JSON path is taken as the dev file."""
    if data.is_file():
        return data, None
    if not data.is_dir():
        raise DataError(f"SQuAD data {data} does not exist — pass the folder holding {SQUAD_FILES['dev']}")
    dev, train = data / SQUAD_FILES["dev"], data / SQUAD_FILES["train"]
    if not dev.is_file():
        raise DataError(f"no {SQUAD_FILES['dev']} in {data}")
    return dev, train if train.is_file() else None


def squad_article_split(data: Path, dev_fraction: float, seed: int) -> list[str] | None:
    """Held-out article titles when the folder has no train file (None when it has one): SQuAD v1.1 train is
    not in ../shared/data, so we train on the other articles of the dev file (squad.split_by_article)."""
    dev_file, train_file = squad_source(data)
    if train_file is not None:
        return None
    _, heldout = squad.split_by_article(squad.read_squad(dev_file), dev_fraction, seed)
    return sorted({example.title for example in heldout})


def _read_squad_split(data: Path, split: str, heldout_titles: Sequence[str] | None) -> list[squad.SquadExample]:
    dev_file, train_file = squad_source(data)
    if split not in ("train", "dev", "validation"):
        raise ConfigError(f"SQuAD has splits train and dev, not {split!r}")
    if heldout_titles is None:
        if split == "train" and train_file is None:
            raise DataError(f"no {SQUAD_FILES['train']} in {data} and no article split to train on")
        return squad.read_squad(train_file if split == "train" else dev_file)
    examples = squad.read_squad(dev_file)
    held = set(heldout_titles)
    missing = held - {example.title for example in examples}
    if missing:
        raise DataError(f"{dev_file} has no article {sorted(missing)[0]!r} of the recorded held-out split")
    return [example for example in examples if (example.title in held) == (split != "train")]


def subsample(items: list, n: int | None, seed: int) -> list:
    """n items drawn with random.Random(seed), kept in file order; all of them when n is None or ≥ len."""
    keep = sample_indices(len(items), n, seed)
    return items if keep is None else [items[index] for index in keep]


def sample_indices(count: int, n: int | None, seed: int) -> list[int] | None:
    """The sorted indices `subsample` keeps of `count` items; None when it keeps them all."""
    if n is None or n >= count:
        return None
    return sorted(random.Random(seed).sample(range(count), n))


def ner_labels(sentences: Sequence[ner.NerSentence]) -> list[str]:
    return ner.build_label_list(sentences)


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """Encoded examples of one split. features: model inputs and training targets, one row per feature (a long
    SQuAD context gives several), in flat arrays (features.Features; a dict of lists is converted); post: what
    maps predictions back to examples (word_ids, example_id, offsets). examples is None for a streamed training
    file, whose text is not kept: num_examples still counts them. has_pair: the examples are text pairs."""

    spec: TaskSpec
    examples: list | None
    features: Features
    post: dict[str, list] = field(default_factory=dict)
    num_examples: int = -1
    has_pair: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.features, Features):
            self.features = Features.from_columns(self.features)
        if self.num_examples < 0:
            self.num_examples = len(self.examples) if self.examples is not None else self.features.num_rows

    def __len__(self) -> int:
        return self.features.num_rows

    @property
    def lengths(self) -> np.ndarray:
        return self.features.lengths

    def fingerprint(self) -> str:
        """sha256 of every feature (inputs and targets): changes with the data, the tokenizer, max_len, stride."""
        digest = hashlib.sha256(self.spec.name.encode())
        self.features.update_digest(digest)
        return digest.hexdigest()


def encode(
    spec: TaskSpec,
    examples: list,
    tokenizer: PreTrainedTokenizerBase,
    max_len: int,
    stride: int = 128,
    train: bool = True,
) -> TaskData:
    """Model features of `examples`. train=True builds training targets (SQuAD: start/end positions);
    train=False keeps what evaluation needs (SQuAD: example_id and offsets of every window)."""
    if not examples:
        raise DataError(f"no {spec.name} examples to encode")
    if spec.kind == "qa":
        if train:
            return TaskData(spec, examples, squad.prepare_train_features(examples, tokenizer, max_len, stride))
        encoded = squad.prepare_eval_features(examples, tokenizer, max_len, stride)
        post = {"example_id": encoded.pop("example_id"), "offset_mapping": encoded.pop("offset_mapping")}
        return TaskData(spec, examples, encoded, post)
    if spec.kind == "token":
        encoded = ner.align_labels(examples, tokenizer, {tag: i for i, tag in enumerate(spec.labels)}, max_len)
        return TaskData(spec, examples, encoded, {"word_ids": encoded.pop("word_ids")})
    pair = examples[0].text_pair is not None
    return TaskData(spec, examples, glue.encode_glue(examples, tokenizer, max_len), has_pair=pair)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def train_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch of index batches, length-grouped: shuffle, sort by length within windows of 50 batches, cut,
    shuffle the batches. Little padding, still random; a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = 50 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches sorted by length (longest first), so evaluation pads little; callers restore the order."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(features: Features | dict[str, list], indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the rows `indices` of `features` into tensors: input_ids with pad_id, masks and segments with 0,
    per-token labels with -100; scalar targets as long (float for regression scores). Adds "index"."""
    if not isinstance(features, Features):
        features = Features.from_columns(features)
    return features.batch(indices, pad_id)


def model_inputs(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {name: batch[name] for name in MODEL_INPUTS if name in batch}
