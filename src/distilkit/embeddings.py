"""Sentence embeddings from any encoder, how faithfully a student reproduces a teacher's, and zero-shot STS-B.

Pooling and normalisation follow the model's sentence-transformers config when it has one
(``distilkit.models.sentence``); a bare encoder gets all-MiniLM-L6-v2's recipe, mean pooling over
non-pad tokens followed by L2 normalisation.

STS-B score (`evaluate --task sts`): Spearman correlation (×100) between the cosine similarity of the two
sentences' embeddings and the gold similarity, on a split with gold scores — ``test_with_scores`` (the STS
Benchmark test set, see ``shared/data/MANIFEST.md``) or ``dev``. This is the number the sentence-transformers
model cards report ("STS-B test, Spearman cosine"); no training on STS-B is involved.

Retrieval fidelity (with a teacher): over a pool of held-out sentences, how often the student's nearest
neighbour of each sentence is the teacher's (@1) and how often the teacher's is in the student's top 10.
Each model's embeddings are compared with its own, so a student narrower than its teacher is fine.

Translation retrieval (cross-lingual students, `distill --parallel`): how often a source sentence's nearest
target is its own translation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from distilkit.errors import ConfigError, DataError
from distilkit.models.sentence import SentenceModel, read_sentence_spec
from distilkit.models.static import is_static, load_static
from distilkit.models.teacher import load_model, load_tokenizer, resolve_model_path
from distilkit.tasks.metrics import pearson, spearman
from distilkit.tasks.readers.glue import read_glue
from distilkit.tasks.registry import TASKS


def load_sentence_model(name_or_path: str | Path) -> SentenceModel:
    """Load a model folder (a sentence-transformers folder, a distilkit student, a bare encoder or a distilkit static
    model, models/static.py) for encoding."""
    if is_static(name_or_path):
        return load_static(name_or_path)
    path = resolve_model_path(name_or_path)
    return SentenceModel(path, load_model(path), load_tokenizer(path), read_sentence_spec(path))


def embedding_fidelity(teacher_emb: np.ndarray, student_emb: np.ndarray, k: int = 10) -> dict[str, float]:
    """How closely student embeddings follow the teacher's on the same texts.

    teacher_emb, student_emb: (n, d) L2-normalised rows (d may differ).
    - ``cosine``: mean cosine similarity of each student embedding to the teacher's (needs equal d);
    - ``nn_agreement@1``: fraction of texts whose nearest other text is the same for both models;
    - ``nn_recall@k``: fraction of texts whose teacher nearest neighbour is in the student's top k.
    """
    n = len(teacher_emb)
    teacher_sim = teacher_emb @ teacher_emb.T
    student_sim = student_emb @ student_emb.T
    np.fill_diagonal(teacher_sim, -np.inf)
    np.fill_diagonal(student_sim, -np.inf)
    teacher_nn = teacher_sim.argmax(1)
    student_rank = np.argsort(-student_sim, axis=1)[:, :k]
    result = {
        "nn_agreement@1": float((student_rank[:, 0] == teacher_nn).mean()),
        f"nn_recall@{k}": float((student_rank == teacher_nn[:, None]).any(1).mean()),
        "n": n,
    }
    if teacher_emb.shape[1] == student_emb.shape[1]:
        result["cosine"] = float((teacher_emb * student_emb).sum(1).mean())
    return result


def translation_retrieval(
    model: SentenceModel, sources: Sequence[str], targets: Sequence[str], batch_size: int = 64, chunk: int = 1024
) -> float:
    """Share of sources whose nearest target by cosine, among all targets, is their own translation
    (targets[i] translates sources[i]): the Tatoeba similarity-search accuracy of Reimers & Gurevych 2020 (after
    Artetxe & Schwenk 2019), source → target.
    The similarities are scored `chunk` sources at a time, so a large set needs no n × n matrix."""
    if len(sources) != len(targets) or not sources:
        raise DataError(f"translation retrieval needs one target per source: got {len(sources)} and {len(targets)}")
    source_emb = _normalised(model.encode(list(sources), batch_size=batch_size))
    target_emb = _normalised(model.encode(list(targets), batch_size=batch_size))
    found = 0
    for start in range(0, len(source_emb), chunk):
        nearest = (source_emb[start : start + chunk] @ target_emb.T).argmax(1)
        found += int((nearest == np.arange(start, start + len(nearest))).sum())
    return found / len(source_emb)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def encode_seconds(
    models: Sequence[SentenceModel], texts: Sequence[str], repeats: int = 5, batch_size: int = 64
) -> list[float]:
    """Median seconds per model to embed ``texts``. The models take turns batch by batch, so that on a
    shared machine every model sees the same load; one warm-up pass each is excluded."""
    chunks = [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)]
    for model in models:
        model.encode(chunks[0], batch_size=batch_size)
    totals = np.zeros((repeats, len(models)))
    for repeat in range(repeats):
        for chunk in chunks:
            for index, model in enumerate(models):
                start = time.perf_counter()
                model.encode(chunk, batch_size=batch_size)
                totals[repeat, index] += time.perf_counter() - start
    return [float(seconds) for seconds in np.median(totals, axis=0)]


# ---------------------------------------------------------------------------------------------
# Zero-shot STS-B (evaluate --task sts)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StsConfig:
    model: str  # sentence-embedding model: sentence-transformers folder, distilkit student or bare encoder
    data: str  # the GLUE STS-B folder (glue/STS-B) or the GLUE root holding it
    split: str = "test_with_scores"  # STS-B test with gold scores (MANIFEST.md); "dev" also has scores
    teacher: str | None = None  # a second model: its score, retention, retrieval fidelity and speed-up
    pool: str | None = None  # sentences for retrieval, one per line; default: the split's own sentences
    max_pool: int = 2000  # retrieval pool size (a seeded sample); the n×n similarities stay small
    k: int = 10  # retrieval fidelity @1 and @k
    max_len: int | None = None  # default: each model's max_seq_length, as sentence-transformers truncates
    batch_size: int = 64
    speed: bool = True  # time teacher and student side by side on the pool (needs a teacher)
    speed_texts: int = 512  # sentences per timed pass
    speed_repeats: int = 5  # timed passes per model, interleaved; the median counts
    seed: int = 42

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_pool", "k", "batch_size", "speed_texts", "speed_repeats"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be ≥ 1")
        if self.max_len is not None and self.max_len < 2:
            problems.append("--max-len must be ≥ 2")
        if self.pool is not None and not Path(self.pool).is_file():
            problems.append(f"retrieval pool file not found: {self.pool}")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class StsPairs:
    sentence1: list[str]
    sentence2: list[str]
    scores: np.ndarray  # (n,) gold similarity in [0, 5]


def read_sts(data: str | Path, split: str = "test_with_scores") -> StsPairs:
    """The sentence pairs and gold scores of an STS-B split (GLUE layout, tab-separated, no quoting)."""
    examples = read_glue(TASKS["stsb"], data, split)
    if any(example.label is None for example in examples):
        raise DataError(f"STS-B split {split!r} in {data} has no gold scores — use test_with_scores or dev")
    return StsPairs(
        [e.text for e in examples], [e.text_pair or "" for e in examples], np.array([e.label for e in examples])
    )


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays (models without a Normalize module included)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def sts_score(model: SentenceModel, pairs: StsPairs, batch_size: int = 64, max_len: int | None = None) -> dict:
    """Spearman and Pearson (×100) of cosine similarity against the gold scores."""
    n = len(pairs.sentence1)
    embeddings = model.encode(pairs.sentence1 + pairs.sentence2, batch_size=batch_size, max_len=max_len)
    similarity = cosine_rows(embeddings[:n], embeddings[n:])
    rho = 100 * spearman(similarity, pairs.scores)
    return {"score": rho, "spearman": rho, "pearson": 100 * pearson(similarity, pairs.scores)}


def _normalised(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def retrieval_pool(config: StsConfig, pairs: StsPairs) -> list[str]:
    """The held-out sentences for retrieval fidelity: the pool file, else the split's distinct sentences."""
    if config.pool is not None:
        try:
            lines = Path(config.pool).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the retrieval pool {config.pool}: {exc}") from None
        sentences = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    else:
        sentences = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))
    if len(sentences) < config.k + 1:
        raise DataError(f"the retrieval pool has {len(sentences)} distinct sentences; need more than --k {config.k}")
    if len(sentences) > config.max_pool:
        keep = np.random.default_rng(config.seed).choice(len(sentences), config.max_pool, replace=False)
        sentences = [sentences[i] for i in sorted(keep)]
    return sentences


def evaluate_sts(config: StsConfig) -> dict:
    """Zero-shot STS-B of ``config.model`` and, given ``config.teacher``, the side-by-side comparison.

    Returns ``{"task", "split", "pairs", "student": {"score", "spearman", "pearson"}, "teacher": same or None,
    "retention", "retrieval": {"nn_agreement@1", "nn_recall@k", "n"}, "speedup", "seconds", "dims", "models"}``;
    scores ×100, retention a fraction; the teacher-only fields are None without a teacher.
    """
    pairs = read_sts(config.data, config.split)
    student = load_sentence_model(config.model)
    teacher = load_sentence_model(config.teacher) if config.teacher else None
    result: dict = {
        "task": "stsb",
        "split": config.split,
        "pairs": len(pairs.scores),
        "metric": "spearman of cosine similarity ×100 (zero-shot)",
        "models": {"student": student.path, "teacher": teacher.path if teacher else None},
        "dims": {"student": int(student.model.config.hidden_size) * len(student.spec.pooling)},
        "student": sts_score(student, pairs, config.batch_size, config.max_len),
        "teacher": None,
        "retention": None,
        "retrieval": None,
        "speedup": None,
        "seconds": None,
    }
    if teacher is None:
        return result
    result["dims"]["teacher"] = int(teacher.model.config.hidden_size) * len(teacher.spec.pooling)
    result["teacher"] = sts_score(teacher, pairs, config.batch_size, config.max_len)
    result["retention"] = result["student"]["score"] / result["teacher"]["score"]
    sentences = retrieval_pool(config, pairs)
    teacher_emb = _normalised(teacher.encode(sentences, config.batch_size, config.max_len))
    student_emb = _normalised(student.encode(sentences, config.batch_size, config.max_len))
    result["retrieval"] = embedding_fidelity(teacher_emb, student_emb, k=config.k)
    if config.speed:
        sample = sentences[: config.speed_texts]
        teacher_s, student_s = encode_seconds([teacher, student], sample, config.speed_repeats, config.batch_size)
        result["seconds"] = {"teacher": teacher_s, "student": student_s, "texts": len(sample)}
        result["speedup"] = teacher_s / student_s
    return result


def sts_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows for a rich table (or any table) of an :func:`evaluate_sts` result."""
    teacher, student = result.get("teacher"), result["student"]
    columns = ["", "teacher", "student"] if teacher else ["", "student"]

    def row(label: str, teacher_cell: str, student_cell: str) -> list[str]:
        return [label, teacher_cell, student_cell] if teacher else [label, student_cell]

    split = f"STS-B {result['split']} ({result['pairs']} pairs)"
    rows = [
        row(f"{split} Spearman ×100", f"{teacher['spearman']:.2f}" if teacher else "", f"{student['spearman']:.2f}"),
        row("Pearson ×100", f"{teacher['pearson']:.2f}" if teacher else "", f"{student['pearson']:.2f}"),
    ]
    if teacher:
        retrieval = result["retrieval"]
        k_key = next(key for key in retrieval if key.startswith("nn_recall@"))
        rows += [
            row("retained", "100%", f"{result['retention']:.1%}"),
            row(
                f"same nearest neighbour @1 ({retrieval['n']} sentences)", "100%", f"{retrieval['nn_agreement@1']:.1%}"
            ),
            row(f"teacher's neighbour in top {k_key.split('@')[1]}", "100%", f"{retrieval[k_key]:.1%}"),
        ]
        if result.get("speedup"):
            rows.append(row("speed-up", "1.00×", f"{result['speedup']:.2f}×"))
    dims = result["dims"]
    rows.append(row("embedding dimension", str(dims.get("teacher", "")), str(dims["student"])))
    return columns, rows
