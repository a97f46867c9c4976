"""The static-embedding tier of `compress` (#17): every vocabulary token embedded through a sentence-embedding
teacher, reduced by PCA and frequency-weighted as Model2Vec does, optionally tuned on the user's text, and saved as
a sentence-transformers ``StaticEmbedding`` folder (the mean of the text's token rows, then L2 normalisation).

Model2Vec: Tulkens & van Dongen 2024 (github.com/MinishLab/model2vec, ``distill``); SIF weighting a/(a + p(w)):
Arora et al. 2017. A static model is a table lookup and a mean: tens of times faster than a transformer.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distilkit.compression.config import latency_limit, start_or_resume
from distilkit.embeddings import embedding_fidelity, encode_seconds, load_sentence_model
from distilkit.errors import ConfigError, DataError
from distilkit.io import atomic_dir, read_json, write_json
from distilkit.models.sentence import SentenceModel, embed, pool
from distilkit.models.static import STATIC_RECORD, StaticModule, is_static, load_static, token_bags

UNUSED_TOKEN = re.compile(r"^\[unused\d+\]$")  # Model2Vec's token_remove_pattern: BERT's placeholder rows
SIF_COEFFICIENT = 1e-4  # Model2Vec's sif_coefficient default (Arora et al. 2017 use 1e-3 to 1e-4)
MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.StaticEmbedding"},
    {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
]


@dataclass
class StaticResult:
    out: Path
    dims: int
    kept_tokens: int  # vocabulary rows embedded through the teacher (the others stay zero)
    weighting: str  # sif-corpus (token counts of the corpus) or sif-zipf (Model2Vec's rank prior)
    explained_variance: float  # fraction of the token vectors' variance the PCA keeps
    tuning: dict[str, Any] | None  # loss terms before/after the tuning epochs, None when not tuned
    projection: Any  # the fitted sklearn PCA: maps the teacher's embeddings into the static model's space


def load_teacher(teacher: str | Path) -> SentenceModel:
    """The teacher for encoding; ConfigError unless it is a sentence-embedding transformer."""
    from distilkit.ship.kinds import model_kind

    if is_static(teacher):
        raise ConfigError(f"{teacher} is already a static model — pass the sentence-embedding transformer it came from")
    kind = model_kind(teacher)
    if kind != "embedding":
        raise ConfigError(f"the static tier needs a sentence-embedding teacher (e.g. a sentence-transformers folder); "
                          f"{teacher} is a {kind} model")  # fmt: skip
    return load_sentence_model(teacher)


def kept_token_ids(tokenizer) -> list[int]:
    """The vocabulary ids worth a row: every token but the special ones and [unusedN] placeholders (Model2Vec)."""
    special = set(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()
    return sorted(i for token, i in vocab.items() if i not in special and not UNUSED_TOKEN.match(token))


def special_template(tokenizer) -> tuple[list[int], list[int]]:
    """The special ids the tokenizer puts before and after a text's own tokens ([CLS] and [SEP] for BERT)."""
    inner = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    start = next(i for i in range(len(full) + 1) if full[i : i + len(inner)] == inner)
    return full[:start], full[start + len(inner) :]


@torch.inference_mode()
def embed_tokens(teacher: SentenceModel, ids: Sequence[int], batch_size: int = 512) -> np.ndarray:
    """(len(ids), dim) teacher embeddings of each token alone: the ids the tokenizer gives a one-token text
    ([CLS] id [SEP] for BERT), pooled and normalised as the teacher's sentence-transformers config says."""
    from distilkit.models.teacher import encoder_of, tokenizer_inputs

    encoder = encoder_of(teacher.model).eval()
    device = next(encoder.parameters()).device
    wanted = tokenizer_inputs(encoder.config)
    before, after = special_template(teacher.tokenizer)
    rows = []
    for start in range(0, len(ids), batch_size):
        batch = [[*before, i, *after] for i in ids[start : start + batch_size]]
        input_ids = torch.tensor(batch, device=device)  # every row has the same length: no padding
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                  "token_type_ids": torch.zeros_like(input_ids)}  # fmt: skip
        hidden = encoder(**{k: v for k, v in inputs.items() if k in wanted}).last_hidden_state
        rows.append(embed(pool(hidden, inputs["attention_mask"], teacher.spec.pooling), teacher.spec).float().cpu())
    return torch.cat(rows).numpy()


def token_weights(tokenizer, ids: Sequence[int], corpus: Sequence[str] | None, sif: float) -> tuple[np.ndarray, str]:
    """SIF weights a/(a + p(w)) of ``ids``: p from the token counts of ``corpus`` when given (a token it never uses
    weighs 1), else Model2Vec's Zipf prior p ∝ 1/(rank + 1), rank = vocabulary order (frequent tokens first)."""
    if corpus:
        counts = Counter(i for e in tokenizer.backend_tokenizer.encode_batch(list(corpus), add_special_tokens=False)
                         for i in e.ids)  # fmt: skip
        total = max(sum(counts.values()), 1)
        probability = np.array([counts.get(i, 0) / total for i in ids])
        return sif / (sif + probability), "sif-corpus"
    inverse_rank = 1.0 / np.arange(2, len(ids) + 2)
    return sif / (sif + inverse_rank / inverse_rank.sum()), "sif-zipf"


def read_lines(corpus: str | Path | Sequence[str] | None) -> list[str]:
    """The corpus as distinct non-empty lines: a text file (one text per line) or a list of texts."""
    if corpus is None:
        return []
    if isinstance(corpus, str | Path):
        try:
            corpus = Path(corpus).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read the corpus {corpus}: {error}") from None
    return list(dict.fromkeys(line.strip() for line in corpus if line.strip()))


def tune(table: np.ndarray, tokenizer, texts: list[str], targets: np.ndarray, epochs: int, lr: float, seed: int,
         batch_size: int = 32) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Regress the static model's mean-pooled vectors onto ``targets`` (the teacher's embeddings of ``texts`` in the
    PCA space): hidden_mse + hidden_cosine, Adam, only the table trains. Returns the table and the terms before/after
    (over all of ``texts``)."""
    from distilkit.losses import hidden_cosine, hidden_mse, weighted_sum

    model = StaticModule(torch.from_numpy(table.copy()))
    target = torch.from_numpy(targets.astype(np.float32))
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    texts_kept = [i for i, encoding in enumerate(encodings) if encoding.ids]  # an empty bag has no direction

    def terms(rows: list[int]) -> dict[str, torch.Tensor]:
        pooled = model(*token_bags(tokenizer, [texts[i] for i in rows]))
        return {"mse": hidden_mse(pooled, target[rows]), "cos": hidden_cosine(pooled, target[rows])}

    with torch.no_grad():
        before = {name: float(value) for name, value in terms(texts_kept).items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(texts_kept), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            loss = weighted_sum(terms([texts_kept[i] for i in order[start : start + batch_size]]), {"mse": 1, "cos": 1})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        after = {name: float(value) for name, value in terms(texts_kept).items()}
    record = {"epochs": epochs, "lr": lr, "texts": len(texts_kept), "before": before, "after": after}
    return model.embedding.weight.detach().numpy(), record


def distill_static(
    teacher: str | Path,
    out: str | Path,
    dims: int = 256,  # Model2Vec's pca_dims default
    corpus: str | Path | Sequence[str] | None = None,
    *,
    tune_epochs: int = 0,  # 0: the untuned Model2Vec recipe
    lr: float = 1e-3,  # Adam on the table (Tokenlearn's default learning rate)
    sif_coefficient: float = SIF_COEFFICIENT,
    seed: int = 0,
    overwrite: bool = False,
    emit: Callable[[dict], None] | None = None,
) -> StaticResult:
    """Build the static model of ``teacher`` in ``out`` (see the module docstring); ``corpus`` (a text file or a list
    of texts) gives the token frequencies and, with ``tune_epochs``, the text to tune on."""
    from sklearn.decomposition import PCA

    emit = emit or (lambda event: None)
    model = load_teacher(teacher)
    tokenizer = model.tokenizer
    ids = kept_token_ids(tokenizer)
    width = int(model.model.config.hidden_size) * len(model.spec.pooling)
    lines = read_lines(corpus)
    if not 1 <= dims <= min(width, len(ids)):
        raise ConfigError(f"--static-dims must be in [1, {min(width, len(ids))}]: the teacher's embedding has {width} "
                          f"dimensions and {len(ids)} ordinary tokens — got {dims}")  # fmt: skip
    if tune_epochs < 0 or (tune_epochs and not lines):
        raise ConfigError("tuning needs --static-epochs ≥ 1 and a corpus to tune on (one text per line)")
    emit({"event": "stage", "stage": "static", "message": f"embedding {len(ids)} tokens through the teacher"})
    vectors = embed_tokens(model, ids)
    projection = PCA(n_components=dims, random_state=seed).fit(vectors)
    weights, weighting = token_weights(tokenizer, ids, lines, sif_coefficient)
    rows = max(tokenizer.get_vocab().values()) + 1  # a vocabulary may skip ids
    table = np.zeros((rows, dims), np.float32)  # special and unused tokens keep zero rows
    table[ids] = projection.transform(vectors) * weights[:, None]
    tuning = None
    if tune_epochs:
        emit({"event": "stage", "stage": "static", "message": f"tuning on {len(lines)} texts for {tune_epochs} epochs"})
        targets = projection.transform(model.encode(lines))
        table, tuning = tune(table, tokenizer.backend_tokenizer, lines, targets, tune_epochs, lr, seed)
    record = {"teacher": str(teacher), "dims": dims, "kept_tokens": len(ids), "vocab": rows,
              "weighting": weighting, "sif_coefficient": sif_coefficient, "corpus_texts": len(lines),
              "explained_variance": float(projection.explained_variance_ratio_.sum()), "tuning": tuning}  # fmt: skip
    save_static(out, table, tokenizer, record, overwrite)
    return StaticResult(Path(out), dims, len(ids), weighting, record["explained_variance"], tuning, projection)


def save_static(out: str | Path, table: np.ndarray, tokenizer, record: dict, overwrite: bool) -> None:
    """A folder `SentenceTransformer(out)` loads: StaticEmbedding at the root (model.safetensors with
    ``embedding.weight``, tokenizer.json), then Normalize; plus distilkit_static.json."""
    from safetensors.numpy import save_file

    backend = copy.deepcopy(tokenizer.backend_tokenizer)  # the teacher's tokenizer stays as it was
    backend.no_padding()
    backend.no_truncation()  # StaticEmbedding reads every token of a text
    with atomic_dir(out, overwrite=overwrite) as folder:
        save_file(
            {"embedding.weight": np.ascontiguousarray(table, dtype=np.float32)}, str(folder / "model.safetensors")
        )
        backend.save(str(folder / "tokenizer.json"))
        write_json(folder / "modules.json", MODULES)
        write_json(folder / "1_Normalize" / "config.json", {})
        write_json(folder / "config_sentence_transformers.json", {"similarity_fn_name": "cosine"})
        write_json(folder / STATIC_RECORD, record)


def static_record(path: str | Path) -> dict:
    return read_json(Path(path) / STATIC_RECORD)


def compress_static(config, emit: Callable[[dict], None]) -> dict[str, Any]:
    """`compress --task embedding`: the static model of the teacher in OUT/model, scored on held-out corpus lines
    (fidelity) and, with --data, STS-B dev (Spearman retention); timed against the teacher. Returns front.json."""
    out = Path(config.out)
    teacher = load_teacher(config.teacher)
    lines = read_lines(config.corpus)
    held_count = min(max(int(len(lines) * (config.selection_fraction or 0.1)), 11), 2000)  # > k=10 neighbours
    if len(lines) < 2 * held_count:
        raise DataError(f"--corpus {config.corpus} has {len(lines)} distinct lines; need at least {2 * held_count}")
    held = set(np.random.default_rng(config.seed).choice(len(lines), held_count, replace=False).tolist())
    train = [line for i, line in enumerate(lines) if i not in held]
    held_out = [lines[i] for i in sorted(held)]
    start_or_resume(config, out, (len(held_out) / len(lines), config.seed))
    built = distill_static(config.teacher, out / "model", config.static_dims, train, tune_epochs=config.static_epochs,
                           seed=config.seed, overwrite=True, emit=emit)  # fmt: skip
    static = load_static(out / "model")
    emit({"event": "stage", "stage": "evaluate", "message": f"fidelity on {len(held_out)} held-out corpus lines"})
    teacher_emb = teacher.encode(held_out)
    static_emb = static.encode(held_out)
    projected = built.projection.transform(teacher_emb)
    projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
    fidelity = {**embedding_fidelity(teacher_emb, static_emb),
                "cosine_in_pca_space": float((projected * static_emb).sum(1).mean())}  # fmt: skip
    timed = held_out[:256]
    teacher_s, static_s = encode_seconds([teacher, static], timed, config.timing_repeats, config.batch_size)
    per_request = 1000.0 * config.batch_size / len(timed)
    teacher_ms, static_ms = teacher_s * per_request, static_s * per_request
    sts = sts_scores(config.data, teacher, static) if config.data else {}
    limit = latency_limit(config, teacher_ms)
    name, value = config.target
    met = {"max_latency_ms": static_ms <= (limit or 0), "min_speedup": teacher_s / static_s >= value,
           "min_retention": 100 * sts.get("retention", 0.0) >= value}[name]  # fmt: skip
    chosen = f"static-{config.static_dims}"
    final = {"name": chosen, "measured_ms": static_ms, "teacher_ms": teacher_ms, "predicted_ms": static_ms,
             "speedup": teacher_s / static_s, "fidelity": fidelity, "dev_score": sts.get("static"),
             "teacher_dev_score": sts.get("teacher"), "dev_retention": sts.get("retention"), "target_met": bool(met),
             "latency_limit_ms": limit, "static": static_record(out / "model"),
             "exports": {"sentence-transformers": str(out / "model")}}  # fmt: skip
    return {
        "tier": "static",
        "target": {"name": name, "value": value, "latency_limit_ms": limit, "backend": "torch-fp32 (encode)",
                   "batch_size": config.batch_size, "seq_len": None, "threads": torch.get_num_threads(),
                   "timed_texts": len(timed), "repeats": config.timing_repeats},
        "teacher": {"path": config.teacher, "measured_ms": teacher_ms, "seconds": teacher_s,
                    "dev_score": sts.get("teacher"), "dims": int(teacher_emb.shape[1])},
        "candidates": [{"name": chosen, "kind": "static", "dims": config.static_dims, "measured_ms": static_ms,
                        "seconds": static_s, "dev_score": sts.get("static"), "fidelity": fidelity,
                        "status": "chosen"}],
        "chosen": chosen, "final": final, "searched": [chosen],
        "note": "transformer embedding candidates are not searched yet: the static tier only",
        "selection_split": f"{len(held_out)} corpus lines held out of the static model's frequencies and tuning",
        "sts_split": "dev" if config.data else None, "time_budget": config.time_budget,
    }  # fmt: skip


def sts_scores(data: str, teacher: SentenceModel, static: SentenceModel) -> dict[str, float]:
    """STS-B dev Spearman ×100 of the teacher and the static model, and the retention (a fraction)."""
    from distilkit.embeddings import read_sts, sts_score

    pairs = read_sts(data, "dev")
    scores = {"teacher": sts_score(teacher, pairs)["spearman"], "static": sts_score(static, pairs)["spearman"]}
    return {**scores, "retention": scores["static"] / scores["teacher"]}
