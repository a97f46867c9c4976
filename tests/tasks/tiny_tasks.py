"""Tiny task files (GLUE TSV, SQuAD JSON, CoNLL columns) and tiny random encoders for the finetune,
task-distill and evaluate tests. Every sentence uses words of tests/tiny.py's vocabulary (or letters of it)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tiny import make_model

# max_position_embeddings of tiny.py's BERT is 64: every length below stays under it.
FAST = {"max_len": 32, "batch_size": 8, "eval_batch_size": 16, "seed": 0}
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
SUBJECTS = ["the ship", "the whale", "her mother", "his sister", "the old man", "the house", "the sea", "my heart"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and a busy shared host makes two spin-waiting threads
    many times slower: import this fixture into a test module to run it single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def base_encoder(directory: Path, layers: int = 2, seed: int = 0) -> str:
    """A tiny random BERT encoder (hidden 32) without a task head, with its tokenizer."""
    make_model(directory, "bert", mlm=False, layers=layers, hidden=32, seed=seed)
    return str(directory)


def sst2_dir(root: Path, n_train: int = 48, n_dev: int = 24) -> str:
    """SST-2 layout where "good" means 1 and "bad" means 0: learnable in a few steps."""
    folder = root / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, count in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for index in range(count):
            label = index % 2
            rows.append(f"{rng.choice(SUBJECTS)} was {'good' if label else 'bad'} .\t{label}")
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(folder)


def stsb_dir(root: Path, n: int = 24) -> str:
    folder = root / "STS-B"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for split in ("train", "dev", "test_with_scores"):
        rows = [STSB_HEADER]
        for index in range(n):
            first, second = rng.choice(SUBJECTS), rng.choice(SUBJECTS)
            score = 5.0 if first == second else round(rng.uniform(0, 4), 2)
            rows.append(f"{index}\tmain\tx\t2012\t{index}\tnone\tnone\t{first} sat .\t{second} sat .\t{score}")
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(folder)


def rte_dir(root: Path, n: int = 16) -> str:
    folder = root / "RTE"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        rows = ["index\tsentence1\tsentence2\tlabel"]
        for index in range(n):
            label = "entailment" if index % 2 else "not_entailment"
            rows.append(
                f"{index}\t{SUBJECTS[index % 8]} was good .\tit was {'good' if index % 2 else 'bad'} .\t{label}"
            )
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(folder)


def squad_dir(root: Path, articles: int = 5) -> str:
    """A SQuAD v1.1 dev file only (like ../shared/data): contexts long enough for several windows at max_len 48."""
    folder = root / "squad"
    folder.mkdir(parents=True, exist_ok=True)
    data = []
    for article in range(articles):
        paragraphs = []
        for paragraph in range(2):
            filler = " ".join(["the sea was long and the night was long ."] * 3)
            context = f"{filler} the captain of the ship was {'abcde'[article]}ahab . {filler}"
            answer = f"{'abcde'[article]}ahab"
            gold = [{"text": answer, "answer_start": context.index(answer)}]
            question = "who was the captain of the ship ?"
            qas = [{"id": f"q{article}-{paragraph}-{k}", "question": question, "answers": gold} for k in range(2)]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article_{article}", "paragraphs": paragraphs})
    (folder / "dev-v1.1.json").write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return str(folder)


def conll_dir(root: Path, n: int = 24) -> str:
    """CoNLL-2003 columns (word POS chunk NER), IOB1 chunk and NER tags, -DOCSTART- lines and blank separators."""
    folder = root / "conll"
    folder.mkdir(parents=True, exist_ok=True)
    names, places = ["ahab", "ishmael", "jo"], ["nantucket", "boston"]
    for split in ("train", "valid", "test"):
        lines = ["-DOCSTART- -X- -X- O", ""]
        for index in range(n):
            name, place = names[index % 3], places[index % 2]
            words = [(name, "NNP I-NP I-PER"), ("sat", "VBD I-VP O"), ("in", "IN I-PP O"), (place, "NNP I-NP I-LOC"),
                     (".", ". O O")]  # fmt: skip
            lines += [f"{word} {tags}" for word, tags in words] + [""]
        (folder / f"{split}.txt").write_text("\n".join(lines), encoding="utf-8")
    return str(folder)
