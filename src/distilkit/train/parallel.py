"""Cross-lingual sentence-embedding students (`distill --objective embedding --parallel FILE`), the recipe of
Reimers & Gurevych 2020, "Making monolingual sentence embeddings multilingual using knowledge distillation".

A student with its own (multilingual) tokenizer learns to map a sentence and its translation to the teacher's
embedding of the sentence: loss = w·MSE(student(source), teacher(source)) + w·MSE(student(translation),
teacher(source)), and the same for the cosine and in-batch similarity terms when their weights are on. The
teacher is frozen, so its source embeddings are computed once, before training; each step only runs the student.
The one loop (train/loop.py) brings accumulation, DDP, checkpoints and exact resume.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from distilkit.data.dataset import BatchPlan, micro_batches, pad_batch
from distilkit.errors import DataError, ModelError
from distilkit.io import sha256_file
from distilkit.losses import weighted_sum
from distilkit.models.sentence import SentenceSpec, encode
from distilkit.models.student import PROJECTION_FILE
from distilkit.models.teacher import hidden_size, load_tokenizer, max_positions, resolve_model_path
from distilkit.runtime import Runtime, seed_everything
from distilkit.train import loop
from distilkit.train.config import DistillConfig
from distilkit.train.objective import EncoderWithHead, Objective, compute_terms
from distilkit.train.records import FileLog
from distilkit.train.setup import (
    DistillResult,
    finish,
    load_models,
    load_projection,
    prepare_out_dir,
    resolve_objective,
)

log = logging.getLogger(__name__)

SIDES = ("source", "translation")  # each term is formed for both sides, against the teacher's source embedding
TEACHER_BATCH = 256  # sentences per teacher forward when caching its embeddings (inference only)


def read_parallel(path: str | Path) -> tuple[list[str], list[str]]:
    """(sources, translations) of a parallel file: TSV lines "source<TAB>translation", or JSONL lines
    {"source": ..., "translation": ...} (a .jsonl/.json name); gzip when the name ends in .gz. Blank lines are
    skipped; anything else malformed is a one-line DataError naming file:line."""
    path = Path(path)
    suffixes = [s for s in path.suffixes if s != ".gz"]
    jsonl = bool(suffixes) and suffixes[-1] in (".jsonl", ".json")
    sources, translations = [], []
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                where = f"{path}:{number}"
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise DataError(f"{where}: not UTF-8 text") from None
                if not line.strip():
                    continue
                source, translation = _json_pair(line, where) if jsonl else _tsv_pair(line, where)
                sources.append(source)
                translations.append(translation)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read the parallel file {path}: {exc}") from None
    if not sources:
        raise DataError(f"{path} holds no sentence pairs — one 'source<TAB>translation' per line (or JSONL)")
    return sources, translations


def _tsv_pair(line: str, where: str) -> tuple[str, str]:
    fields = [field.strip() for field in line.split("\t")]
    if len(fields) != 2 or not all(fields):
        raise DataError(f"{where}: expected 'source<TAB>translation', got {len(fields)} field(s) — one pair a line")
    return fields[0], fields[1]


def _json_pair(line: str, where: str) -> tuple[str, str]:
    try:
        record = json.loads(line)
    except ValueError:
        raise DataError(f'{where}: not a JSON object — one {{"source", "translation"}} object a line') from None
    pair = [record.get(key) if isinstance(record, dict) else None for key in SIDES]
    if not all(isinstance(text, str) and text.strip() for text in pair):
        raise DataError(f'{where}: needs non-empty strings under "source" and "translation"')
    return pair[0].strip(), pair[1].strip()


@dataclass
class TokenizedPairs:
    """Both sides in the student's tokens (special tokens added, truncated), as int64 tensors."""

    sources: list[torch.Tensor]
    translations: list[torch.Tensor]

    @property
    def lengths(self) -> np.ndarray:
        """Per pair, the longer side's length: what length grouping sorts by."""
        return np.array([max(len(s), len(t)) for s, t in zip(self.sources, self.translations, strict=True)])


def tokenize_pairs(tokenizer, sources: list[str], translations: list[str], max_len: int, lower: bool) -> TokenizedPairs:
    def ids(texts: list[str]) -> list[torch.Tensor]:
        texts = [text.lower() for text in texts] if lower else texts
        encoded = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
        return [torch.tensor(row, dtype=torch.int64) for row in encoded]

    return TokenizedPairs(ids(sources), ids(translations))


def teacher_targets(teacher: nn.Module, tokenizer, sources: list[str], spec: SentenceSpec) -> torch.Tensor:
    """The teacher's pooled vectors of the sources, before L2 normalisation (what emb_mse compares), (n, d_t)
    float32 on the CPU — the one sentence-embedding forward (models/sentence.encode), run once."""
    unnormalised = dataclasses.replace(spec, normalize=False)
    return torch.from_numpy(encode(teacher, tokenizer, sources, batch_size=TEACHER_BATCH, spec=unnormalised))


def parallel_projection(config: DistillConfig, teacher: nn.Module, student: nn.Module) -> nn.Linear | None:
    """None for a student as wide as the teacher; the loss projection of its folder for another width."""
    d_teacher, d_student = hidden_size(teacher.config), hidden_size(student.config)
    if d_teacher != d_student and not (Path(resolve_model_path(config.student)) / PROJECTION_FILE).is_file():
        raise ModelError(
            f"the student's hidden size ({d_student}) differs from the teacher's ({d_teacher}) — --parallel compares "
            f"sentence vectors: pick a student as wide as the teacher, or put a ({d_teacher}, {d_student}) loss "
            f"projection in its folder as {PROJECTION_FILE}"
        )
    return load_projection(config, teacher, student)


def distill_parallel(config: DistillConfig, runtime: Runtime, callback: Callable[[dict], None] | None) -> DistillResult:
    """Set up, train and save a cross-lingual student; `distill` dispatches here when `config.parallel` is set."""
    emit = callback or (lambda event: None)
    out = Path(config.out)
    sources, translations = read_parallel(config.parallel)
    teacher, student = load_models(config)
    objective, notes = resolve_objective(config, teacher, student)
    projection = parallel_projection(config, teacher, student)
    spec, tokenizer = objective.sentence, load_tokenizer(config.student)
    max_len = min(spec.max_length(student.config, tokenizer), max_positions(student.config))
    pairs = tokenize_pairs(tokenizer, sources, translations, max_len, spec.do_lower_case)
    world = runtime.world_size
    plan = BatchPlan(pairs.lengths, config.batch_size * world * config.grad_accum, config.seed, config.group_by_length)
    for note in notes:
        (log.info if callback else log.warning)(note)
        emit({"event": "note", "message": note})
    if runtime.is_main:
        prepare_out_dir(out, config, objective, resume=config.resume)
    runtime.barrier()

    seed_everything(config.seed)
    # The teacher reads the sources with its own tokenizer, once (in every process); then it leaves the accelerator.
    targets = teacher_targets(teacher.to(runtime.device).eval(), load_tokenizer(config.teacher), sources, spec)
    teacher.cpu()
    log.info("teacher embeddings of %d source sentences computed", len(sources))
    student.to(runtime.device).train()
    trainable = student if projection is None else nn.ModuleDict({"student": student, "projection": projection})
    trainable.to(runtime.device)
    student_fwd = EncoderWithHead(student, objective.pooling, projection)
    if runtime.distributed:
        student_fwd = DistributedDataParallel(student_fwd, find_unused_parameters=True)  # the pooler: no gradient
    per_epoch = plan.batches_per_epoch()
    recipe = ParallelRecipe(config, pairs, targets, plan, objective, tokenizer.pad_token_id or 0, runtime)
    log_file = FileLog(out / "metrics.jsonl", out / "tb" if config.tensorboard else None, runtime.is_main)
    fingerprint = sha256_file(config.parallel)
    trained = loop.train(
        trainable, student_fwd, recipe, loop.Settings.of(config), runtime,
        planned_steps=config.max_steps or config.epochs * per_epoch, per_epoch=per_epoch,
        checkpoints=out / "checkpoints",
        plan={"global_batch": plan.global_batch, "seed": config.seed, "data_fingerprint": fingerprint},
        records=log_file, emit=emit, resume_required=False,
    )  # fmt: skip
    terms = [f"{side}_{name}" for side in SIDES for name in objective.active_weights()]
    return finish(config, runtime, emit, trained, student, objective, projection, terms)  # the student's tokenizer


class ParallelRecipe:
    """Cross-lingual batches and loss: a global batch of pairs (a pure function of seed, epoch and position), both
    sides through the student in one forward, each side's embedding terms against the teacher's cached source
    vectors, normalised by the global batch's pair count."""

    def __init__(
        self, config: DistillConfig, pairs: TokenizedPairs, targets: torch.Tensor, plan: BatchPlan,
        objective: Objective, pad_id: int, runtime: Runtime,
    ) -> None:  # fmt: skip
        self.config, self.pairs, self.targets, self.plan = config, pairs, targets, plan
        self.objective, self.pad_id, self.runtime = objective, pad_id, runtime
        self.epoch_cache: dict[int, list] = {}

    def micro_batches(self, step: int, total_steps: int) -> tuple[list[dict], dict]:
        epoch, position = divmod(step, self.plan.batches_per_epoch())
        if epoch not in self.epoch_cache:
            self.epoch_cache = {epoch: self.plan.epoch(epoch)}
        rows = self.epoch_cache[epoch][position]
        runtime, world = self.runtime, self.runtime.world_size
        chunks = micro_batches(rows, self.config.grad_accum * world)[runtime.rank :: world]
        pairs = self.pairs
        n_tokens = sum(len(pairs.sources[i]) + len(pairs.translations[i]) for chunk in chunks for i in chunk)
        n_tokens = runtime.all_reduce_sum([n_tokens])[0]
        normalizers = {"sequences": float(len(rows))}  # each side's terms: a mean over the global batch's pairs
        step_weights, _ = self.objective.at(step, total_steps)
        weights = {f"{side}_{name}": weight for side in SIDES for name, weight in step_weights.items()}
        batches = []
        for chunk in chunks:
            # Sources then translations, padded together: one student forward (and one DDP pass) per micro-batch.
            sequences = [pairs.sources[i] for i in chunk] + [pairs.translations[i] for i in chunk]
            input_ids, attention_mask = pad_batch(sequences, self.pad_id)
            batches.append({
                "input_ids": input_ids.to(runtime.device), "attention_mask": attention_mask.to(runtime.device),
                "teacher": self.targets[torch.as_tensor(chunk)].to(runtime.device), "normalizers": normalizers,
                "weights": weights,
            })  # fmt: skip
        return batches, {"tokens": n_tokens, "weights": weights}

    def loss(self, student_fwd: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pooled = student_fwd(batch["input_ids"], batch["attention_mask"], None, False, False)["pooled"]
        n_pairs = len(batch["teacher"])
        teacher_out = {"pooled": batch["teacher"]}
        terms = {}
        for side, rows in zip(SIDES, (slice(0, n_pairs), slice(n_pairs, None)), strict=True):
            side_terms = compute_terms(
                self.objective, {"pooled": pooled[rows]}, teacher_out, batch["attention_mask"][rows], None,
                batch["normalizers"],
            )  # fmt: skip
            terms.update({f"{side}_{name}": value for name, value in side_terms.items()})
        return weighted_sum(terms, batch["weights"]), terms
