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
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import transformers

from common import RESULTS, data_root, portable
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.io import demo_corpus_path, write_json
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
    out.mkdir(parents=True, exist_ok=True)  # a later round writes the same files again
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
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all contenders, order alternating")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS / "prepare_throughput.json")
    args = parser.parse_args()
    corpus = [args.corpus or demo_corpus_path()] * args.repeat
    cores = os.cpu_count() or 1
    glue = data_root() / "glue"
    exclude = tuple(str(path) for path in sorted(glue.iterdir()) if path.is_dir()) if glue.is_dir() else ()
    transformers.logging.set_verbosity_error()  # the baseline's per-line calls warn about lines > 512 tokens
    load_tokenizer(args.teacher)  # warm-up: imports transformers and fills the OS file cache for both runs
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)

        def config(name: str, **extra) -> PrepareConfig:
            return PrepareConfig(args.teacher, tuple(map(str, corpus)), str(scratch / name), args.max_len,
                                 overwrite=True, **extra)  # fmt: skip

        def baseline() -> tuple[int, float, float]:
            started, cpu_started = time.perf_counter(), cpu_seconds()
            tokens = naive_prepare(args.teacher, corpus, scratch / "baseline", args.max_len, min_len=4)
            return tokens, time.perf_counter() - started, cpu_seconds() - cpu_started

        contenders = {
            "prepare": lambda: timed_prepare(config("prepare")),
            "prepare_threads": lambda: timed_prepare(config("threads", workers=cores)),
            "baseline": baseline,
            **({"prepare_exclude_glue": lambda: timed_prepare(config("exclude", exclude=exclude))} if exclude else {}),
        }  # fmt: skip
        meta = None
        for round_ in range(args.rounds):  # A B C D, then D C B A
            for name in contenders if round_ % 2 == 0 else reversed(list(contenders)):
                out, seconds, cpu = contenders[name]()
                tokens = out if isinstance(out, int) else out["n_tokens"]
                meta = out if name == "prepare" else meta
                run = {"contender": name, "round": round_, "tokens": tokens, "seconds": seconds, "cpu_seconds": cpu}
                if name == "prepare_exclude_glue":
                    run.update(excluded=out["excluded"]["dropped"], exclude_seconds=out["excluded"]["seconds"])
                runs.append(run)
        identical = all(
            (scratch / "prepare" / name).read_bytes() == (scratch / other / name).read_bytes()
            for name in ("tokens.bin", "offsets.npy")
            for other in ("threads", "baseline")
        )

    def median(name: str, key: str = "seconds") -> float:
        return statistics.median(run[key] for run in runs if run["contender"] == name)

    n_tokens = meta["n_tokens"]
    result = {
        "benchmark": "prepare_throughput",
        "prepare_tokens_per_s": round(n_tokens / median("prepare")),
        "baseline_tokens_per_s": round(n_tokens / median("baseline")),
        "speedup": round(median("baseline") / median("prepare"), 2),
        "prepare_tokens_per_cpu_s": round(n_tokens / median("prepare", "cpu_seconds")),  # batching alone
        "baseline_tokens_per_cpu_s": round(n_tokens / median("baseline", "cpu_seconds")),
        "threads_workers": cores,  # prepare(workers=cores): that many threads, Rust's own pool off
        "threads_tokens_per_s": round(n_tokens / median("prepare_threads")),
        "outputs_identical": identical,
        "n_tokens": n_tokens,
        "n_sequences": meta["n_sequences"],
        "corpus": [path.name for path in corpus[:1]],  # names only: results hold no machine paths
        "repeat": args.repeat,
        "protocol": f"{args.rounds} rounds, order alternating; medians of wall seconds (tokenizer loading "
        "included); every run in runs",
        "runs": runs,
        "max_len": args.max_len,
        "tokenizer": args.teacher,
        "cpu_count": cores,
        "load_average_1m": round(os.getloadavg()[0], 2),  # other processes on the box skew every figure
        "versions": meta["versions"],
        "command": "flock /tmp/distilkit-bench.lock python benchmarks/prepare_throughput.py "
        f"--repeat {args.repeat} --rounds {args.rounds}",
    }
    if exclude:  # --exclude against every GLUE task's dev/test texts: its cost next to tokenizing
        result["exclude_glue_overhead"] = round(median("prepare_exclude_glue") / median("prepare") - 1, 3)
        result["exclude_glue_seconds"] = round(median("prepare_exclude_glue", "exclude_seconds"), 3)
    write_json(args.out, portable(result))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
