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

from common import RESULTS, log, portable, shared_data
from distilkit.embedding_suite import SuiteConfig, evaluate_suite, retentions
from distilkit.io import atomic_write_text, read_json, write_json
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
    parser.add_argument("--render", action="store_true", help="re-draw the markdown from the results JSON")
    args = parser.parse_args()
    if args.render:
        record = portable(read_json(RESULTS / f"embedding_suite{args.tag}.json"))
        render(record, args.tag)
        write_json(RESULTS / f"embedding_suite{args.tag}.json", record)
        return
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
    record = portable({"command": command, "teacher": DEFAULT_TEACHER, "students": rows,
                       "seconds": time.monotonic() - started,
                       "neighbour_text": f"WikiText-2 validation, first {args.texts} paragraphs"})  # fmt: skip
    write_json(RESULTS / f"embedding_suite{args.tag}.json", record)
    render(record, args.tag)
    print(json.dumps({name: {"mean_retention": r["mean_retention"], "min_retention": r["min_retention"]}
                      for name, r in rows.items()}))  # fmt: skip


def render(record: dict, tag: str = "") -> None:
    """The markdown of a results record (also: `--render` re-draws it from the JSON)."""
    lines = ["# Embedding students on the embedding suite", "", f"Command: `{record['command']}`  ",
             f"Teacher: {record['teacher']}. Scores ×100; retention = student / teacher per quality task, their "
             f"mean and minimum; neighbours (nn@1 agreement with the teacher on {record['neighbour_text']}) is a "
             "fidelity, shown beside them and not averaged in.", ""]  # fmt: skip
    for name, result in record["students"].items():
        result.update(retentions(result["scores"]))
        lines += [f"## {name}", "", "| task | teacher | student | retained |", "|---|---|---|---|"]
        for task in result["tasks"]:
            kept = result["retention"].get(task)
            lines.append(f"| {task} | {result['scores']['teacher'][task]:.2f} | {result['scores']['model'][task]:.2f} "
                         f"| {f'{kept:.1f}%' if kept is not None else '(fidelity)'} |")  # fmt: skip
        lines += ["", f"Mean retention {result['mean_retention']:.1f}%, lowest {result['min_retention']:.1f}%.", ""]
    atomic_write_text(RESULTS / f"embedding_suite{tag}.md", "\n".join(lines))


if __name__ == "__main__":
    main()
