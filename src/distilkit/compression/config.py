"""CompressConfig: the flags of `distilkit compress`, checked all at once before any work (#17)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distilkit.errors import ConfigError
from distilkit.io import read_json, write_json

TARGETS = ("max_latency_ms", "min_speedup", "min_retention")
LAYER_CHOICES = ("spread", "probe")
DEFAULT_SELECTION_FRACTION = 0.1  # when the teacher records no selection split of its own (finetune #15)
EMBEDDING_TASK = "embedding"  # --task embedding: a sentence-embedding teacher, the static tier (compression/static.py)


def parse_sizes(text: str | None, flag: str) -> tuple[int, ...] | None:
    """'2,3,4' → (2, 3, 4); None stays None. ConfigError for anything but positive integers."""
    if text is None:
        return None
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers, e.g. 2,3,4 — got '{text}'") from None
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"{flag} must list positive integers, got '{text}'")
    return sizes


@dataclass(frozen=True, kw_only=True)
class CompressConfig:
    teacher: str  # fine-tuned sequence classifier (finetune output), or a sentence-embedding model (--task embedding)
    task: str  # its task: a GLUE name (sst2, mrpc, ...), or embedding for a sentence-embedding teacher
    # The task's benchmark folder (e.g. ../shared/data/glue/SST-2); the selection split is carved from it.
    # --task embedding: optional, an STS-B folder whose dev split gives the Spearman retention.
    data: str | None = None
    out: str  # the deployable model, front.json, report.html and the resumable work of the search
    # The target: exactly one of the three.
    max_latency_ms: float | None = None  # p50 latency at --batch-size, --seq-len, --backend, --threads
    min_speedup: float | None = None  # × the teacher's p50 latency on the same backend
    min_retention: float | None = None  # % of the teacher's selection score: the fastest student that keeps it
    # Where latency is measured (ship/bench.py's backends and timing).
    backend: str = "onnx-int8"  # torch-fp32, torch-bf16, onnx-fp32 or onnx-int8 (the deployment example)
    batch_size: int = 1  # sequences per request when timing (1: interactive serving)
    seq_len: int = 128  # tokens per sequence when timing (bench's default)
    threads: int = 0  # intra-op threads when timing (0 = every core, as bench)
    timing_repeats: int = 10  # timed runs per model and round (2 rounds, interleaved with one other model)
    # The search.
    time_budget: float = 3600.0  # seconds for the whole command; a rerun with the same --out gets a fresh one
    search_fraction: float = 0.5  # of the time left after timing: the successive-halving rounds; the rest: the winner
    eta: int = 2  # successive halving keeps the best 1/eta of the candidates each round (Jamieson & Talwalkar 2016)
    max_candidates: int = 8  # shapes of the predicted front that are trained at all (8, η=2: rounds of 8, 4, 2)
    depths: str | None = None  # layer counts to consider, e.g. '2,3,4,6'; default: every count up to the teacher's
    widths: str | None = None  # hidden sizes, whole teacher heads, e.g. '192,384'; default: ¼, ½, ¾ and all the heads
    layers: str = "spread"  # which teacher layers: spread (evenly, DistilBERT) or probe (init-student --layers auto)
    probe_text: str | None = None  # text for the width choice and --layers probe; default: the shipped demo corpus
    # Task distillation of every candidate (task-distill's flags of the same names).
    selection_fraction: float | None = None  # held out of train to choose on; default: the teacher's own, else 0.1
    selection_seed: int | None = None  # default: the teacher's own, else 0
    max_len: int | None = None  # training tokens per example; default: the task's (128)
    train_batch_size: int = 32  # task-distill's --batch-size
    lr: float = 5e-5  # BERT's GLUE default (task-distill)
    epochs: float = 3.0  # the winner's full run (BERT GLUE); search rounds stop earlier, by steps
    alpha_kl: float = 0.5  # task-distill's defaults (HF run_squad_w_distillation.py)
    alpha_hard: float = 0.5  # weight of the gold-label loss (task-distill's)
    temperature: float = 2.0  # softmax temperature of the KL term (task-distill's)
    max_train_samples: int | None = None  # train on a seeded sample (quick runs)
    unlabeled: str | None = None  # passed to task-distill: text only the teacher labels
    unlabeled_text_column: str | None = None  # --unlabeled column(s), as task-distill
    augment: int = 0  # passed to task-distill: perturbed copies of each training input
    exclude: tuple[str, ...] = ()  # passed to task-distill: evaluation data kept out of --unlabeled/--augment rows
    cache_dir: str | None = None  # teacher-logit cache, shared by every candidate; default: task-distill's
    max_drop: float = 1.0  # int8 accuracy guard of the export: points int8 may lose on dev (export's default)
    seed: int = 42  # training seed of every candidate (the same batches for all: a fair comparison)
    overwrite: bool = False  # start over in a non-empty --out instead of resuming it
    # --task embedding (the static tier).
    corpus: str | None = None  # the user's text, one per line: token frequencies, tuning, held-out fidelity
    static_dims: int = 256  # PCA dimensions of the static model (Model2Vec's default)
    static_epochs: int = 0  # tuning epochs on --corpus (0: the untuned Model2Vec recipe)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(str(path) for path in self.exclude or ()))
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        from distilkit.ship.bench import BACKENDS

        problems = []
        given = [name for name in TARGETS if getattr(self, name) is not None]
        if len(given) != 1:
            named = " and ".join(f"--{name.replace('_', '-')}" for name in given) or "none"
            problems.append(f"give one target: --max-latency-ms, --min-speedup or --min-retention (got {named})")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            problems.append("--max-latency-ms must be > 0")
        if self.min_speedup is not None and self.min_speedup <= 1:
            problems.append("--min-speedup must be > 1 (a student faster than its teacher)")
        if self.min_retention is not None and not 0 < self.min_retention <= 100:
            problems.append("--min-retention is a percentage of the teacher's score, in (0, 100]")
        if self.backend not in BACKENDS:
            problems.append(f"--backend must be one of {', '.join(BACKENDS)}, got '{self.backend}'")
        positive = ("batch_size", "timing_repeats", "max_candidates", "train_batch_size", "max_train_samples")
        too_small = [name for name in positive if getattr(self, name) is not None and getattr(self, name) < 1]
        problems += [f"--{name.replace('_', '-')} must be ≥ 1" for name in too_small]
        if self.seq_len < 2 or self.threads < 0:
            problems.append("--seq-len must be ≥ 2 and --threads ≥ 0")
        if self.time_budget <= 0 or not 0 < self.search_fraction < 1:
            problems.append("--time-budget must be > 0 and --search-fraction in (0, 1)")
        if self.eta < 2:
            problems.append("--eta must be ≥ 2 (the share of candidates kept each round is 1/eta)")
        if self.layers not in LAYER_CHOICES:
            problems.append(f"--layers must be spread or probe, got '{self.layers}'")
        if self.selection_fraction is not None and not 0 < self.selection_fraction < 1:
            problems.append("--selection-fraction must be in (0, 1): the search chooses on it, never on dev")
        if self.max_drop < 0:
            problems.append("--max-drop must be ≥ 0")
        for text, flag in ((self.depths, "--depths"), (self.widths, "--widths")):
            try:
                parse_sizes(text, flag)
            except ConfigError as error:
                problems.append(str(error))
        if self.task == EMBEDDING_TASK:
            return problems + self.embedding_problems()
        if self.data is None:
            problems.append("--data is required: the task's benchmark folder")
        if not problems:  # the task, the data files and the training flags, as task-distill itself checks them
            try:
                self.task_distill_config(self.teacher, self.out, selection=(DEFAULT_SELECTION_FRACTION, 0))
            except ConfigError as error:
                problems.append(str(error))
        return problems

    def embedding_problems(self) -> list[str]:
        from pathlib import Path

        problems = []
        if self.corpus is None or not Path(self.corpus).is_file():
            problems.append(f"--task embedding needs --corpus, a text file with one text per line (got {self.corpus})")
        if self.static_dims < 1 or self.static_epochs < 0:
            problems.append("--static-dims must be ≥ 1 and --static-epochs ≥ 0")
        if self.min_retention is not None and self.data is None:
            problems.append("--min-retention of an embedding teacher is STS-B Spearman retention: pass --data STS-B")
        return problems

    @property
    def target(self) -> tuple[str, float]:
        """(field name, value) of the one target given."""
        name = next(name for name in TARGETS if getattr(self, name) is not None)
        return name, float(getattr(self, name))

    def task_distill_config(self, student: str, out: str, *, selection: tuple[float, int], **settings: Any):
        """The TaskDistillConfig of one candidate's run: this command's training flags plus ``settings``."""
        from distilkit.train.task_distill import TaskDistillConfig

        flags: dict[str, Any] = {
            "teacher": self.teacher, "student": student, "task": self.task, "data": self.data, "out": out,
            "selection_fraction": selection[0], "selection_seed": selection[1], "max_len": self.max_len,
            "batch_size": self.train_batch_size, "lr": self.lr, "epochs": self.epochs, "alpha_kl": self.alpha_kl,
            "alpha_hard": self.alpha_hard, "temperature": self.temperature,
            "max_train_samples": self.max_train_samples, "unlabeled": self.unlabeled,
            "unlabeled_text_column": self.unlabeled_text_column, "augment": self.augment, "exclude": self.exclude,
            "cache_dir": self.cache_dir, "seed": self.seed, "eval_split": "selection",
        }  # fmt: skip
        return TaskDistillConfig(**{**flags, **settings})


RESUME_INDEPENDENT = ("time_budget", "overwrite")  # flags a rerun may change and still continue the same search


def latency_limit(config: CompressConfig, teacher_ms: float) -> float | None:
    """The latency a candidate must be predicted under (ms); None for a retention target."""
    if config.max_latency_ms is not None:
        return config.max_latency_ms
    if config.min_speedup is not None:
        return teacher_ms / config.min_speedup
    return None


def start_or_resume(config: CompressConfig, out: Path, selection: tuple[float, int]) -> None:
    """A new run writes OUT/compress.json; a rerun must match it (except the budget) and goes on from its files."""
    from importlib.metadata import version

    record_path = out / "compress.json"
    flags = {k: v for k, v in asdict(config).items() if k not in RESUME_INDEPENDENT}
    flags["exclude"] = list(flags["exclude"])
    if config.overwrite and out.exists():
        shutil.rmtree(out)
    if record_path.is_file():
        before = read_json(record_path)["flags"]
        changed = sorted(k for k in flags if before.get(k) != flags[k])
        if not changed:
            return
        if not (out / "work" / "cost.json").is_file():  # nothing timed or trained yet (e.g. a wrong --data): restart
            shutil.rmtree(out)
        else:
            raise ConfigError(f"{out} holds a compress run with other settings ({', '.join(changed)}) — rerun "
                              "with the same flags to continue, choose another --out, or pass --overwrite")  # fmt: skip
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no compress run — choose another --out or pass --overwrite")
    packages = {name: version(name) for name in ("distilkit", "torch", "transformers")}
    write_json(record_path, {"flags": flags, "selection": list(selection), "versions": packages})
