"""Sentence-embedding students on the embedding suite (#21): STS-B test, MRPC and QNLI dev pair classification, an
SST-2 probe, and neighbour agreement with the teacher on held-out WikiText-2 validation paragraphs — text the
students never trained on. Teacher: the embedded all-MiniLM-L6-v2. Retention per task and the mean of them.

    python benchmarks/embedding_suite.py --student "3 layers=runs/bench-emb/run-3layers-auto/student" ...

Writes benchmarks/results/embedding_suite.json and .md and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from common import RESULTS, log, shared_data
from distilkit.embedding_suite import SuiteConfig, evaluate_suite
from distilkit.io import atomic_write_text, write_json
from distilkit.models.teacher import DEFAULT_TEACHER


def held_out_text(shared: Path, out: Path, limit: int) -> Path:
    """WikiText-2 validation paragraphs (no heading lines): text outside every training corpus here."""
    lines = (shared / "text" / "wikitext-2-raw" / "wiki.valid.raw").read_text(encoding="utf-8").splitlines()
    paragraphs = [line.strip() for line in lines if line.strip() and not line.strip().startswith("=")][:limit]
    atomic_write_text(out, "\n".join(paragraphs) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", action="append", default=[], metavar="NAME=PATH", help="a student to score")
    parser.add_argument("--texts", type=int, default=1000, help="held-out paragraphs for neighbour agreement")
    parser.add_argument("--tag", default="", help="suffix of the results files")
    args = parser.parse_args()
    shared = shared_data("glue/STS-B", "text/wikitext-2-raw/wiki.valid.raw")
    text = held_out_text(shared, Path("/tmp") / "distilkit-suite-text.txt", args.texts)
    started = time.monotonic()
    rows = {}
    for item in args.student:
        name, _, path = item.partition("=")
        log(f"scoring {name}")
        rows[name] = evaluate_suite(SuiteConfig(model=path, data=str(shared / "glue"), teacher=DEFAULT_TEACHER,
                                                text=str(text)))  # fmt: skip
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/embedding_suite.py", *sys.argv[1:]])
    record = {"command": command, "teacher": DEFAULT_TEACHER, "students": rows, "seconds": time.monotonic() - started,
              "neighbour_text": f"WikiText-2 validation, first {args.texts} paragraphs"}  # fmt: skip
    write_json(RESULTS / f"embedding_suite{args.tag}.json", record)
    lines = ["# Embedding students on the embedding suite", "", f"Command: `{command}`  ",
             f"Teacher: {DEFAULT_TEACHER}. Scores ×100; retention = student / teacher per task; neighbours: "
             f"{record['neighbour_text']}.", ""]  # fmt: skip
    for name, result in rows.items():
        lines += [f"## {name}", "", "| task | teacher | student | retained |", "|---|---|---|---|"]
        lines += [f"| {task} | {result['scores']['teacher'][task]:.2f} | {result['scores']['model'][task]:.2f} "
                  f"| {result['retention'][task]:.1f}% |" for task in result["tasks"]]  # fmt: skip
        lines += ["", f"Mean retention {result['mean_retention']:.1f}%, lowest {result['min_retention']:.1f}%.", ""]
    atomic_write_text(RESULTS / f"embedding_suite{args.tag}.md", "\n".join(lines))
    print(json.dumps({name: {"mean_retention": r["mean_retention"], "min_retention": r["min_retention"]}
                      for name, r in rows.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
