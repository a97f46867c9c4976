"""Tokens/s of ``distilkit.prepare`` against a naive line-by-line baseline, same input and tokenizer.

The baseline is what one writes first: ``tokenizer(line)`` per line, chunks appended to Python
lists, arrays written at the end. Both are timed end to end (tokenizer loading included) and must
produce identical tokens. Prints one JSON line and writes benchmarks/results/prepare_throughput.json.

    python benchmarks/prepare_throughput.py [--corpus FILE] [--repeat 3] [--teacher NAME]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import transformers

from common import RESULTS
from distilkit.data.prepare import PrepareConfig, demo_corpus_path, prepare
from distilkit.io import write_json
from distilkit.models.teacher import DEFAULT_TEACHER, load_tokenizer


def naive_prepare(teacher: str, corpus: list[Path], out: Path, max_len: int, min_len: int) -> int:
    """Line-by-line reference: one tokenizer call per line, Python lists for everything."""
    tokenizer = load_tokenizer(teacher)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    tokens: list[int] = []
    lengths: list[int] = []
    for path in corpus:
        with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                ids = tokenizer(line, add_special_tokens=False)["input_ids"]
                for start in range(0, len(ids), max_len - 2):
                    piece = ids[start : start + max_len - 2]
                    if len(piece) + 2 >= min_len:
                        tokens += [cls, *piece, sep]
                        lengths.append(len(piece) + 2)
    out.mkdir(parents=True)
    np.array(tokens, dtype=np.uint16 if len(tokenizer) <= 65535 else np.uint32).tofile(out / "tokens.bin")
    np.save(out / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    return len(tokens)


def cpu_seconds() -> float:
    """CPU time of this process, all threads: less skewed than wall time when the box is shared."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_prepare(config: PrepareConfig) -> tuple[dict, float, float]:
    started, cpu_started = time.perf_counter(), cpu_seconds()
    meta = prepare(config)
    return meta, time.perf_counter() - started, cpu_seconds() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="text or .gz file (default: the demo corpus)")
    parser.add_argument("--repeat", type=int, default=3, help="read the corpus this many times (longer, steadier run)")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS / "prepare_throughput.json")
    args = parser.parse_args()
    corpus = [args.corpus or demo_corpus_path()] * args.repeat
    cores = os.cpu_count() or 1
    transformers.logging.set_verbosity_error()  # the baseline's per-line calls warn about lines > 512 tokens
    load_tokenizer(args.teacher)  # warm-up: imports transformers and fills the OS file cache for both runs

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)

        def config(name: str, workers: int) -> PrepareConfig:
            return PrepareConfig(
                args.teacher, tuple(map(str, corpus)), str(scratch / name), args.max_len, workers=workers
            )

        meta, prepare_seconds, prepare_cpu = timed_prepare(config("prepare", workers=0))
        threads_meta, threads_seconds, _ = timed_prepare(config("threads", workers=cores))
        started, cpu_started = time.perf_counter(), cpu_seconds()
        baseline_tokens = naive_prepare(args.teacher, corpus, scratch / "baseline", args.max_len, min_len=4)
        baseline_seconds, baseline_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        identical = all(
            (scratch / "prepare" / name).read_bytes() == (scratch / other / name).read_bytes()
            for name in ("tokens.bin", "offsets.npy")
            for other in ("threads", "baseline")
        )

    n_tokens = meta["n_tokens"]
    result = {
        "benchmark": "prepare_throughput",
        "prepare_tokens_per_s": round(n_tokens / prepare_seconds),
        "baseline_tokens_per_s": round(baseline_tokens / baseline_seconds),
        "speedup": round(baseline_seconds / prepare_seconds, 2),
        "prepare_tokens_per_cpu_s": round(n_tokens / prepare_cpu),  # per core-second: batching alone
        "baseline_tokens_per_cpu_s": round(baseline_tokens / baseline_cpu),
        "prepare_stream_tokens_per_s": round(meta["tokens_per_second"]),  # excluding tokenizer load and save
        "threads_workers": cores,  # prepare(workers=cores): that many threads, Rust's own pool off
        "threads_tokens_per_s": round(threads_meta["n_tokens"] / threads_seconds),
        "prepare_seconds": round(prepare_seconds, 3),
        "threads_seconds": round(threads_seconds, 3),
        "baseline_seconds": round(baseline_seconds, 3),
        "outputs_identical": identical,
        "n_tokens": n_tokens,
        "n_sequences": meta["n_sequences"],
        "corpus": [path.name for path in corpus[:1]],  # names only: results hold no machine paths
        "repeat": args.repeat,
        "max_len": args.max_len,
        "tokenizer": args.teacher,
        "cpu_count": cores,
        "load_average_1m": round(os.getloadavg()[0], 2),  # other processes on the box skew every figure
        "versions": meta["versions"],
    }
    write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
