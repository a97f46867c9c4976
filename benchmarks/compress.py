"""`distilkit compress` on SST-2 from a converged teacher (#17): the predicted front, how well the latency model
predicted each trained candidate and the shipped student, and the shipped student's dev score against the teacher's.

Teacher: the converged SST-2 teacher of benchmarks/tasks.py (runs/bench-tasks/sst2/teacher-1: all-MiniLM-L6-v2
fine-tuned for full epochs on a 10,000-sentence sample of train, with a selection split carved from it), or any
`distilkit finetune --task sst2` output given with --teacher. Search and ship under one time budget on this machine:

    python benchmarks/compress.py --min-speedup 3 --backend onnx-int8 --time-budget 3600
    python benchmarks/compress.py --teacher runs/sst2/teacher --max-latency-ms 5 --seq-len 64

Killed, the same command continues from its finished candidates (--work keeps them). Writes
benchmarks/results/compress.json (and the run's report.html beside it) and prints one JSON line. Data:
../shared/data relative to the repository root, or $DISTILKIT_SHARED_DATA.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from common import REPO, RESULTS, cpu_info, log, portable, progress, shared_data
from distilkit.compression.config import CompressConfig
from distilkit.compression.run import compress
from distilkit.io import read_json, write_json

DEFAULT_TEACHER = REPO / "runs" / "bench-tasks" / "sst2" / "teacher-1"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER, help="converged SST-2 teacher (finetune out)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-compress", help="compress --out")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--max-latency-ms", type=float)
    target.add_argument("--min-speedup", type=float)
    target.add_argument("--min-retention", type=float)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=64)  # the example
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--time-budget", type=float, default=3600.0)
    parser.add_argument("--max-train-samples", type=int, default=10_000)  # as benchmarks/tasks.py trains SST-2
    parser.add_argument("--max-candidates", type=int, default=8)
    args = parser.parse_args()
    if args.max_latency_ms is None and args.min_speedup is None and args.min_retention is None:
        args.min_speedup = 3.0  # the default target: 3× the teacher on the same backend
    return args


def summary(front: dict, seconds: float) -> dict:
    """The figures worth a row: the teacher, the shipped student, the latency model's errors, the trained front."""
    final, teacher = front["final"], front["teacher"]
    trained = [c for c in front["candidates"] if c["measured_ms"] is not None]
    return {
        "target": front["target"], "chosen": front["chosen"], "target_met": final["target_met"],
        "teacher": {"ms": teacher["measured_ms"], "dev": final["teacher_dev_score"],
                    "selection": teacher["selection_score"], "shape": f"{teacher['layers']}x{teacher['hidden']}"},
        "student": {"ms": final["measured_ms"], "predicted_ms": final["predicted_ms"],
                    "prediction_error_pct": final["prediction_error_pct"], "dev": final["dev_score"],
                    "dev_retention": final["dev_retention"], "speedup": final["teacher_ms"] / final["measured_ms"],
                    "selection_retention": final["selection_retention"]},
        "latency_model": {"teacher_predicted_ms": front["cost_model"]["teacher_predicted_ms"],
                          "teacher_measured_ms": front["cost_model"]["teacher_ms"],
                          "mean_abs_error_pct_trained": front["mean_abs_prediction_error_pct"],
                          "fit_seconds": front["cost_model"]["seconds"]},
        "front": [{k: c[k] for k in ("name", "params", "predicted_ms", "measured_ms", "selection_score", "retention",
                                     "status")} for c in trained],
        "candidates": len(front["candidates"]), "seconds": seconds,
    }  # fmt: skip


def main() -> None:
    args = arguments()
    root = shared_data("glue/SST-2")
    if not (args.teacher / "config.json").is_file():
        sys.exit(f"no teacher at {args.teacher} — run `python benchmarks/tasks.py --tasks sst2` (its teacher-1) or "
                 "`distilkit finetune --task sst2 ...` and pass --teacher")  # fmt: skip
    config = CompressConfig(
        teacher=str(args.teacher), task="sst2", data=str(root / "glue" / "SST-2"), out=str(args.work),
        max_latency_ms=args.max_latency_ms, min_speedup=args.min_speedup, min_retention=args.min_retention,
        backend=args.backend, batch_size=args.batch_size, seq_len=args.seq_len, threads=args.threads,
        time_budget=args.time_budget, max_train_samples=args.max_train_samples, max_candidates=args.max_candidates,
    )  # fmt: skip
    started = time.monotonic()
    log(f"compress {args.teacher} into {args.work} (budget {args.time_budget:.0f} s)")
    compress(config, callback=progress("compress"))
    front = read_json(args.work / "front.json")
    record = {
        "benchmark": "compress", "command": shlex.join(["python", *sys.argv]), "machine": cpu_info(),
        "config": json.loads(json.dumps(vars(args), default=str)), **summary(front, time.monotonic() - started),
    }  # fmt: skip
    write_json(RESULTS / "compress.json", portable(record))
    shutil.copy2(args.work / "report.html", RESULTS / "compress.html")
    print(json.dumps(portable(record), sort_keys=True))


if __name__ == "__main__":
    main()
