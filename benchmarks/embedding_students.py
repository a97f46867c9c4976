"""Sentence-embedding students of the embedded teacher (all-MiniLM-L6-v2): quality, speed and size, before and after.

Workload (issue: sentence-embedding distillation): students of 2, 3 and 4 layers, their layers chosen by
`init-student --layers auto` (mean-cosine probe on a sample of the training text), plus the 3-layer student
with evenly spread layers [0, 2, 5] for comparison. Each is distilled with `distill --objective embedding`
on WikiText-2 (train split, cut into sentences) for a fixed time budget, then scored zero-shot on STS-B
(`test_with_scores`, Spearman of cosine similarity ×100) before and after. Speed-up: teacher and student
embed the same 512 STS-B sentences in interleaved timed passes (median of 5), on this machine, now.
Retrieval fidelity: nearest-neighbour agreement with the teacher over the STS-B test sentences.

Data: ../shared/data relative to the repository root, or $DISTILKIT_SHARED_DATA. Results are written after
every model to benchmarks/results/embedding_students.{json,md} and the quality-vs-speed plot .png.

    python benchmarks/embedding_students.py [--budget 300] [--budgets 2=900] [--layers 2,3,4] [--validate-probe]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import RESULTS, evaluation_data, portable, shared_data
from distilkit.data.decontam import Exclusion, build_exclusion
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.embeddings import (
    SentenceModel,
    StsConfig,
    embedding_fidelity,
    encode_seconds,
    load_sentence_model,
    read_sts,
    retrieval_pool,
    sts_score,
)
from distilkit.io import atomic_write_text, read_jsonl, write_json
from distilkit.models.student import InitStudentConfig, build_student, init_student, probe_sample
from distilkit.models.teacher import DEFAULT_TEACHER
from distilkit.tasks.metrics import spearman
from distilkit.tasks.readers.glue import read_glue
from distilkit.tasks.registry import task_spec
from distilkit.train.distill import DistillConfig, distill

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
CORPORA = {
    "wiki": "WikiText-2 train",
    "books": "the public-domain novels",
    "both": "WikiText-2 train + the public-domain novels",
    "both+glue": "WikiText-2 train + the public-domain novels + the unlabelled sentences of the GLUE train splits "
    "(SST-2, MRPC, STS-B, RTE, CoLA; labels and scores unused)",
}
GLUE_TRAIN = {"sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE", "cola": "CoLA"}


def sentences(shared: Path, corpus: str, exclusion: Exclusion | None = None) -> list[str]:
    """The shared raw text, one sentence per line (fragments under 4 words dropped): WikiText-2 train
    (one paragraph per line, headings skipped) and/or the public-domain novels (wrapped, blank-line paragraphs)."""
    paragraphs = []
    if corpus in ("wiki", "both", "both+glue"):
        wiki = (shared / "text" / "wikitext-2-raw" / "wiki.train.raw").read_text(encoding="utf-8").splitlines()
        paragraphs += [line.strip() for line in wiki if line.strip() and not line.strip().startswith("=")]
    if corpus in ("books", "both", "both+glue"):
        for book in sorted((shared / "text" / "public-domain").glob("*.txt")):
            paragraphs += [" ".join(p.split()) for p in re.split(r"\n\s*\n", book.read_text(encoding="utf-8"))]
    found = [s for p in paragraphs for s in SENTENCE_END.split(p) if len(s.split()) >= 4]
    if corpus.endswith("+glue"):  # in-domain unlabelled text: the texts of the train splits, never dev/test
        for task, folder in GLUE_TRAIN.items():
            for example in read_glue(task_spec(task), shared / "glue" / folder, "train"):
                found += [t for t in (example.text, example.text_pair) if t and len(t.split()) >= 3]
    if exclusion is not None:  # decontaminated: no sentence holding an evaluation text (data/decontam.py)
        keep = exclusion.filter("corpus", found)
        found = [text for text, kept in zip(found, keep, strict=True) if kept]
    return found


def result_seconds(result) -> float:
    """Seconds the distillation loop ran (the last logged step's elapsed time)."""
    records = read_jsonl(result.out / "metrics.jsonl")
    return float(records[-1]["elapsed"]) if records else 0.0


def size_mib(model_dir: Path) -> float:
    return sum(p.stat().st_size for p in model_dir.glob("model*.safetensors")) / 2**20


class Scorer:
    """STS-B score, retrieval fidelity and speed-up of models against the teacher, teacher work done once."""

    def __init__(self, sts_dir: Path, teacher: SentenceModel) -> None:
        self.dev_pairs = read_sts(sts_dir, "dev")  # every choice is made on dev; test is reported
        self.teacher_dev = sts_score(teacher, self.dev_pairs)["spearman"]
        self.pairs = read_sts(sts_dir, "test_with_scores")
        self.teacher = teacher
        self.pool = retrieval_pool(StsConfig(teacher.path, str(sts_dir)), self.pairs)
        self.teacher_pool = teacher.encode(self.pool)
        self.teacher_sts = sts_score(teacher, self.pairs)["spearman"]

    def score(self, model: SentenceModel, speed: bool = True) -> dict:
        result = {
            "stsb_spearman": sts_score(model, self.pairs)["spearman"],
            "stsb_dev_spearman": sts_score(model, self.dev_pairs)["spearman"],
            **embedding_fidelity(self.teacher_pool, model.encode(self.pool)),
        }
        result["retention"] = result["stsb_spearman"] / self.teacher_sts
        result["dev_retention"] = result["stsb_dev_spearman"] / self.teacher_dev
        if speed:
            teacher_s, student_s = encode_seconds([self.teacher, model], self.pool[:512], repeats=5)
            result.update(teacher_seconds=teacher_s, student_seconds=student_s, speedup=teacher_s / student_s)
        return result


def validate_probe(teacher: SentenceModel, scorer: Scorer, texts: list[str], n_layers: int = 3) -> list[dict]:
    """Every undistilled n-layer subset: probe score (mean cosine to the teacher) and zero-shot STS-B."""
    from itertools import combinations

    target = teacher.encode(texts, max_len=128)
    rows = []
    for layers in combinations(range(teacher.model.config.num_hidden_layers), n_layers):
        student = SentenceModel("", build_student(teacher.model, list(layers)).eval(), teacher.tokenizer, teacher.spec)
        probe = float((student.encode(texts, max_len=128) * target).sum(1).mean())
        rows.append(
            {"layers": list(layers), "probe": probe, "stsb_spearman": sts_score(student, scorer.pairs)["spearman"]}
        )
        print(f"probe {layers}: {probe:.4f}  STS-B {rows[-1]['stsb_spearman']:.2f}", flush=True)
    return rows


def write_results(record: dict) -> None:
    record = portable(record)  # no paths of this machine in the results
    name = "embedding_students" + record.get("tag", "")
    write_json(RESULTS / f"{name}.json", record)
    teacher = record["teacher"]
    lines = [
        "# Sentence-embedding students of all-MiniLM-L6-v2",
        "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine']}."
        + (f" Distillation: {record['distill']}." if record["students"] else "")
        + "  ",
        f"Teacher: STS-B test Spearman {teacher['stsb_spearman']:.2f} (dev {teacher.get('stsb_dev_spearman', 0):.2f}), "
        f"{teacher['size_mib']:.1f} MiB. Corpus decontamination: "
        + (
            f"{sum(dec['dropped'].values()):,} sentences dropped, {sum(dec['kept'].values()):,} kept, against "
            f"{dec['evaluation_texts']:,} evaluation texts"
            if isinstance(dec := record["data"].get("decontamination"), dict)
            else "none"
        )
        + ".",
        "",
    ]
    if record["students"]:  # none with --layers "" --validate-probe
        lines += [
            "| student | teacher layers | STS-B before | STS-B after | retained | dev retained | nn@1 | nn@10 "
            "| speed-up | MiB | steps |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in record["students"]:
            after = s.get("after", {})
            cells = [
                s["name"], ",".join(map(str, s["layers"])), f"{s['before']['stsb_spearman']:.2f}",
                f"{after['stsb_spearman']:.2f}" if after else "…", f"{after['retention']:.1%}" if after else "…",
                f"{after['dev_retention']:.1%}" if after and "dev_retention" in after else "…",
                f"{after['nn_agreement@1']:.1%}" if after else "…", f"{after['nn_recall@10']:.1%}" if after else "…",
                f"{after['speedup']:.2f}×" if after else "…", f"{s['size_mib']:.1f}", str(s.get("steps", "…")),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Targets: 3 layers ≥ 98.5% of the teacher's STS-B at ≥ 1.9×, 2 layers ≥ 95% at ≥ 2.7×.", ""]
        lines += auto_vs_even(record["students"])
    for s in record["students"]:
        if s.get("probe"):
            best = ", ".join(f"{','.join(map(str, p['layers']))}: {p['score']:.3f}" for p in s["probe"][:5])
            lines.append(f"- {s['name']} layer probe ({s['probe_seconds']:.0f} s), best 5 of {len(s['probe'])}: {best}")
    if record.get("probe_validation"):
        rows = record["probe_validation"]
        lines += ["", "## Probe validation: every undistilled 3-layer subset", "",
                  "| layers | probe (mean cosine) | STS-B |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {','.join(map(str, r['layers']))} | {r['probe']:.3f} | {r['stsb_spearman']:.2f} |"
                  for r in sorted(rows, key=lambda r: -r["probe"])]  # fmt: skip
        rho = spearman([r["probe"] for r in rows], [r["stsb_spearman"] for r in rows])
        best = max(rows, key=lambda r: r["stsb_spearman"])
        chosen = max(rows, key=lambda r: r["probe"])
        lines += ["", f"Rank correlation of probe and STS-B over the {len(rows)} subsets: {rho:.2f}. The probe's "
                  f"choice {','.join(map(str, chosen['layers']))} scores {chosen['stsb_spearman']:.2f}; the best "
                  f"subset, {','.join(map(str, best['layers']))}, {best['stsb_spearman']:.2f}."]  # fmt: skip
    atomic_write_text(RESULTS / f"{name}.md", "\n".join(lines) + "\n")
    plot(record, RESULTS / f"{name}.png")


def auto_vs_even(students: list[dict]) -> list[str]:
    """The 3-layer auto choice against the even spread, before and after distillation (same time budget)."""
    by_name = {s["name"]: s for s in students}
    auto, even = by_name.get("3 layers, auto"), by_name.get("3 layers, even spread")
    if not auto or not even or auto["layers"] == even["layers"]:
        return []
    lines = []
    for stage, label in (("before", "undistilled"), ("after", "after distillation for the same time")):
        if stage in auto and stage in even:
            a, e = auto[stage]["stsb_spearman"], even[stage]["stsb_spearman"]
            lines.append(f"- 3 layers, {label}: auto {','.join(map(str, auto['layers']))} {a:.2f} vs even spread "
                         f"{','.join(map(str, even['layers']))} {e:.2f} ({a - e:+.2f} points)")  # fmt: skip
    return [*lines, ""] if lines else []


def plot(record: dict, path: Path) -> None:
    """The quality-vs-speed plot, drawn by the report card's own function (`distilkit report` shows it too)."""
    from distilkit.ship.report import pyplot_or_none, speed_quality_figure

    plt = pyplot_or_none()
    if plt is None:
        print("matplotlib missing: no plot (pip install matplotlib)", flush=True)
        return
    figure = speed_quality_figure(plt, record)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def budgets(args: argparse.Namespace) -> dict[int, float]:
    """--budgets "2=900,3=600" → {2: 900.0, 3: 600.0} (seconds of distillation per student size)."""
    pairs = [item.partition("=") for item in args.budgets.split(",") if item.strip()]
    return {int(size): float(seconds) for size, _, seconds in pairs}


def budget_text(args: argparse.Namespace) -> str:
    sizes = budgets(args)
    text = ", ".join(f"{n} layers {sizes.get(int(n), args.budget):.0f} s" for n in args.layers.split(",") if n)
    return text or "no student distilled"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300, help="distillation seconds per student")
    parser.add_argument(
        "--layers",
        default="2,3,4",
        help="student sizes (auto-selected layers); '' with --validate-probe: only the validation",
    )
    parser.add_argument("--no-even", action="store_true", help="skip the evenly spread 3-layer comparison")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="both", help="shared raw text to distil on")
    parser.add_argument("--max-len", type=int, default=32, help="training sequence length (tokens)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--alpha-hidden", type=float, default=1.0)
    parser.add_argument("--budgets", default="", help="per-size overrides of --budget, e.g. 2=900,3=600")
    parser.add_argument("--probe-samples", type=int, default=512)
    parser.add_argument("--validate-probe", action="store_true", help="also score every 3-layer subset on STS-B")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per student (instead of a budget)")
    parser.add_argument(
        "--keep-contaminated",
        action="store_true",
        help="skip the decontamination of the corpus against every evaluation split",
    )
    parser.add_argument("--tag", default="", help="suffix of the results files (ablations keep the main results)")
    args = parser.parse_args()
    shared = shared_data("text/wikitext-2-raw/wiki.train.raw", "glue/STS-B/test_with_scores.tsv")
    work = Path(args.work or tempfile.mkdtemp(prefix="distilkit-emb-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"work folder {work}", flush=True)

    train_text = work / "sentences.txt"
    exclusion = None if args.keep_contaminated else build_exclusion(evaluation_data(shared))
    train_sentences = sentences(shared, args.corpus, exclusion)
    atomic_write_text(train_text, "\n".join(train_sentences) + "\n")
    stats = prepare(PrepareConfig(DEFAULT_TEACHER, (str(train_text),), str(work / "data"), max_len=args.max_len,
                                  overwrite=True))  # fmt: skip
    teacher = load_sentence_model(DEFAULT_TEACHER)
    scorer = Scorer(shared / "glue" / "STS-B", teacher)
    record = {
        "benchmark": "embedding_students",
        "tag": args.tag,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads visible, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), shared with other jobs — timings are indicative",
        "distill": f"objective embedding on {CORPORA[args.corpus]}, "
        f"{f'{args.steps} steps' if args.steps else budget_text(args)} per student, lr {args.lr}, "
        f"batch {args.batch_size}, "
        f"max_len {args.max_len}, alpha_emb_mse/cos 1/1, alpha_hidden {args.alpha_hidden}",
        "data": {
            "train": f"{CORPORA[args.corpus]}: {len(train_sentences)} sentences, {stats['n_sequences']} sequences "
            f"of ≤ {args.max_len} tokens, {stats['n_tokens']} tokens",
            "eval": "STS-B test_with_scores (1379 pairs); choices on STS-B dev (1500 pairs)",
            "decontamination": exclusion.record() if exclusion else "none (--keep-contaminated)",
        },
        "metric": "STS-B test Spearman ×100",
        "metric_key": "stsb_spearman",
        "teacher": {
            "stsb_spearman": scorer.teacher_sts,
            "stsb_dev_spearman": scorer.teacher_dev,
            "size_mib": size_mib(Path(teacher.path)),
        },
        "students": [],
        "tasks": {},  # read by `distilkit report`: quality retained per student
    }
    print(f"teacher STS-B {scorer.teacher_sts:.2f}", flush=True)
    probe_texts = probe_sample(str(train_text), args.probe_samples, seed=0)
    if args.validate_probe:
        record["probe_validation"] = validate_probe(teacher, scorer, probe_texts)
        write_results(record)

    sizes = [n for n in args.layers.split(",") if n]  # --layers "" --validate-probe: the validation only
    plans = [(f"{n} layers, auto", "auto", int(n)) for n in sizes]
    if not args.no_even and "3" in sizes:
        plans.insert(plans.index(next(p for p in plans if p[2] == 3)) + 1, ("3 layers, even spread", "0,2,5", 3))
    for name, layers, n in plans:
        tag = name.replace(" ", "").replace(",", "-")
        probe_started = time.monotonic()
        init = init_student(InitStudentConfig(
            DEFAULT_TEACHER, str(work / f"init-{tag}"), layers=layers, num_layers=n if layers == "auto" else None,
            probe_text=str(train_text), probe_samples=args.probe_samples, overwrite=True,
        ))  # fmt: skip
        entry = {"name": name, "layers": init.layers, "probe_seconds": time.monotonic() - probe_started}
        entry["size_mib"] = size_mib(init.out)
        if init.probe:
            entry["probe"] = [{"layers": list(k), "score": v} for k, v in init.probe.table()]
        entry["before"] = scorer.score(load_sentence_model(init.out), speed=False)
        record["students"].append(entry)
        write_results(record)
        print(f"{name}: layers {init.layers}, STS-B before {entry['before']['stsb_spearman']:.2f}", flush=True)
        result = distill(DistillConfig(
            teacher=DEFAULT_TEACHER, student=str(init.out), data=str(work / "data"), out=str(work / f"run-{tag}"),
            objective="embedding", alpha_hidden=args.alpha_hidden, lr=args.lr, batch_size=args.batch_size,
            epochs=100, time_budget=None if args.steps else budgets(args).get(n, args.budget), max_steps=args.steps,
            save_every=100_000, overwrite=True,
            tensorboard=False,
        ))  # fmt: skip
        entry.update(steps=result.steps, size_mib=size_mib(result.student_dir), distill_seconds=result_seconds(result))
        entry["after"] = scorer.score(load_sentence_model(result.student_dir))
        record["tasks"][f"STS-B ({name})"] = {
            "teacher": {"score": scorer.teacher_sts}, "student": {"score": entry["after"]["stsb_spearman"]},
            "retention": entry["after"]["retention"],
        }  # fmt: skip
        record["seconds"] = time.monotonic() - started
        write_results(record)
        after = entry["after"]
        print(f"{name}: STS-B after {after['stsb_spearman']:.2f} ({after['retention']:.1%}), "
              f"{after['speedup']:.2f}×, {result.steps} steps", flush=True)  # fmt: skip
    print(f"done in {(time.monotonic() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
