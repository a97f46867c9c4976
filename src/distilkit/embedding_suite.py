"""A multi-task evaluation of sentence-embedding models, in the spirit of MTEB (#21): does a student hold up
beyond the text it was distilled on?

Tasks, from a folder in the GLUE layout (../shared/data/glue) and the user's own text:
- ``sts``: STS-B test_with_scores, Spearman (×100) of the cosine similarity against the gold score;
- ``pair-mrpc``, ``pair-qnli``: MRPC dev and QNLI dev, average precision (×100) of the cosine similarity for
  the positive class (paraphrase; the sentence answers the question) — MTEB's pair-classification score;
- ``classify-sst2``: SST-2 dev accuracy (×100) of a logistic-regression probe on frozen embeddings, trained on a
  seeded sample of SST-2 train — MTEB's classification protocol;
- ``neighbours`` (with a teacher and ``--text``): how often the student finds the teacher's nearest neighbour of
  each of the user's texts (@1, ×100).
The metrics come from scikit-learn and scipy. sentence-transformers' evaluators would do the same sums but take
only SentenceTransformer objects; distilkit's encoder pools as each model's own config says (models/sentence.py).
A task whose files are absent is skipped and said so. With a teacher: retention per task and their mean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distilkit.embeddings import SentenceModel, cosine_rows, embedding_fidelity, load_sentence_model
from distilkit.errors import ConfigError
from distilkit.io import read_lines
from distilkit.tasks.readers.glue import read_glue
from distilkit.tasks.readers.splits import subsample
from distilkit.tasks.registry import TASKS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteConfig:
    model: str  # sentence-embedding model: sentence-transformers folder, distilkit student or bare encoder
    data: str  # the GLUE root (holding STS-B/, MRPC/, QNLI/, SST-2/): ../shared/data/glue
    teacher: str | None = None  # a second model: its scores, retention per task, neighbour agreement
    text: str | None = None  # your own text, one per line: teacher-neighbour agreement on it (needs --teacher)
    max_pairs: int = 2000  # pairs per pair-classification task (a seeded sample)
    probe_train: int = 5000  # SST-2 train sentences the logistic-regression probe learns from
    max_texts: int = 2000  # lines of --text used for neighbour agreement
    seed: int = 42

    def __post_init__(self) -> None:
        problems = [f"--{name.replace('_', '-')} must be ≥ 1"
                    for name in ("max_pairs", "probe_train", "max_texts") if getattr(self, name) < 1]  # fmt: skip
        if not Path(self.data).is_dir():
            problems.append(f"evaluation data folder not found: {self.data} (the GLUE root, e.g. shared/data/glue)")
        if self.text is not None and not Path(self.text).is_file():
            problems.append(f"--text file not found: {self.text}")
        if self.text is not None and self.teacher is None:
            problems.append("--text measures agreement with a teacher's neighbours: give --teacher too")
        if problems:
            raise ConfigError("; ".join(problems))


def _cosines(model: SentenceModel, first: list[str], second: list[str]) -> np.ndarray:
    return cosine_rows(model.encode(first), model.encode(second))


def sts_task(root: Path, config: SuiteConfig) -> Callable[[SentenceModel], float] | None:
    if not (root / "STS-B" / "test_with_scores.tsv").is_file():
        return None
    from scipy.stats import spearmanr

    examples = read_glue(TASKS["stsb"], root / "STS-B", "test_with_scores")
    first, second = [e.text for e in examples], [e.text_pair for e in examples]
    gold = np.array([e.label for e in examples], dtype=float)
    return lambda model: 100 * float(spearmanr(_cosines(model, first, second), gold).statistic)


def pair_task(root: Path, task: str, folder: str, positive: int, config: SuiteConfig):
    if not (root / folder / "dev.tsv").is_file():
        return None
    from sklearn.metrics import average_precision_score

    examples = subsample(read_glue(TASKS[task], root / folder, "dev"), config.max_pairs, config.seed)
    first, second = [e.text for e in examples], [e.text_pair for e in examples]
    truth = np.array([e.label == positive for e in examples])
    return lambda model: 100 * float(average_precision_score(truth, _cosines(model, first, second)))


def classify_task(root: Path, config: SuiteConfig):
    if not all((root / "SST-2" / f"{split}.tsv").is_file() for split in ("train", "dev")):
        return None
    from sklearn.linear_model import LogisticRegression

    train = subsample(read_glue(TASKS["sst2"], root / "SST-2", "train"), config.probe_train, config.seed)
    test = read_glue(TASKS["sst2"], root / "SST-2", "dev")

    def score(model: SentenceModel) -> float:
        probe = LogisticRegression(max_iter=1000, random_state=config.seed)  # MTEB's probe
        probe.fit(model.encode([e.text for e in train]), [e.label for e in train])
        return 100 * float(probe.score(model.encode([e.text for e in test]), [e.label for e in test]))

    return score


def suite_tasks(config: SuiteConfig) -> tuple[dict[str, Callable[[SentenceModel], float]], dict[str, str]]:
    """(task → score function, task → why it was skipped)."""
    root = Path(config.data)
    found = {
        "sts": sts_task(root, config),
        "pair-mrpc": pair_task(root, "mrpc", "MRPC", 1, config),
        "pair-qnli": pair_task(root, "qnli", "QNLI", 0, config),  # label 0 = entailment: the sentence answers
        "classify-sst2": classify_task(root, config),
    }
    files = {"sts": "STS-B/test_with_scores.tsv", "pair-mrpc": "MRPC/dev.tsv", "pair-qnli": "QNLI/dev.tsv",
             "classify-sst2": "SST-2/train.tsv and dev.tsv"}  # fmt: skip
    skipped = {name: f"no {files[name]} under {root}" for name, score in found.items() if score is None}
    return {name: score for name, score in found.items() if score is not None}, skipped


def evaluate_suite(config: SuiteConfig, callback: Callable[[dict], None] | None = None) -> dict:
    """Score the model (and the teacher) on every task whose data is there; with a teacher, retention per task
    (student / teacher × 100) and the mean of the per-task retentions."""
    emit = callback or (lambda event: None)
    tasks, skipped = suite_tasks(config)
    if not tasks:
        raise ConfigError(f"no task of the embedding suite has its files under {config.data}: {skipped}")
    models = {"model": load_sentence_model(config.model)}
    if config.teacher:
        models["teacher"] = load_sentence_model(config.teacher)
    scores: dict[str, dict[str, float]] = {role: {} for role in models}
    for name, score in tasks.items():
        for role, model in models.items():
            scores[role][name] = score(model)
        emit({"event": "stage", "stage": "suite", "message": f"{name}: "
              + ", ".join(f"{role} {values[name]:.2f}" for role, values in scores.items())})  # fmt: skip
    if config.text:
        texts = subsample(read_lines(Path(config.text)), config.max_texts, config.seed)
        agreement = embedding_fidelity(models["teacher"].encode(texts), models["model"].encode(texts))
        scores["model"]["neighbours"] = 100 * agreement["nn_agreement@1"]
        scores["teacher"]["neighbours"] = 100.0  # the teacher agrees with itself
    result = {"tasks": list(scores["model"]), "scores": scores, "skipped": skipped, "config": asdict(config)}
    if config.teacher:
        result.update(retentions(scores))
    result["mean_score"] = float(np.mean([v for name, v in scores["model"].items() if name != "neighbours"]))
    return result


def retentions(scores: dict[str, dict[str, float]]) -> dict:
    """Retention per quality task (student / teacher × 100), their mean and minimum. Neighbour agreement is a
    fidelity (the teacher's is 100 by definition), reported beside them, never averaged in."""
    retention = {name: 100 * scores["model"][name] / scores["teacher"][name]
                 for name in scores["model"] if name != "neighbours"}  # fmt: skip
    return {"retention": retention, "mean_retention": float(np.mean(list(retention.values()))),
            "min_retention": min(retention.values())}  # fmt: skip


def suite_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows for the CLI: one row per task, teacher and model side by side, retention."""
    roles = [role for role in ("teacher", "model") if role in result["scores"]]
    columns = ["task", *roles] + (["retained"] if "retention" in result else [])
    rows = []
    for name in result["tasks"]:
        row = [name, *(f"{result['scores'][role][name]:.2f}" for role in roles)]
        kept = result.get("retention", {}).get(name)
        rows.append(row + ([f"{kept:.1f}%" if kept is not None else "(fidelity)"] if "retention" in result else []))
    if "retention" in result:
        rows.append(["mean", *([""] * len(roles)), f"{result['mean_retention']:.1f}%"])
    return columns, rows
