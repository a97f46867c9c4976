"""Training tokens/s of `distilkit distill` vs a plain baseline distiller, side by side in one run.

Workload (issue #3): teacher BertForMaskedLM, 12 layers, hidden 256, 4 heads, FFN 1024, vocab 30522,
random init; student 6 layers copied from teacher layers [0, 2, 4, 7, 9, 11]; 4096 sequences of random
length 32–128; batch 32; triple loss 5/2/1 at T=2.

distilkit: the real `distill()` (length-grouped batches, dynamic padding, vocabulary logits only at the
masked positions). Baseline: the same models, masking and optimizer, but random batches padded to the
batch maximum and full-vocabulary logits at every position, as in a straightforward distiller.
Throughput counts real (non-pad) tokens. Prints one JSON line; writes benchmarks/results/train_throughput.json.

    python benchmarks/train_throughput.py [--steps 12] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM

from common import RESULTS
from distilkit.data.dataset import TokenDataset, pad_batch, write_token_dataset
from distilkit.data.masking import MaskingSpec, mask_sequences, selection_weights, step_generator
from distilkit.io import read_jsonl, write_json
from distilkit.models.student import build_student
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.loop import build_optimizer, linear_schedule, optimizer_step

SPECIAL = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}


def build_workload(root: Path, n_sequences: int, seed: int) -> tuple[Path, Path, Path]:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=256, num_hidden_layers=12, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=512,
    )  # fmt: skip
    teacher = BertForMaskedLM(config)
    teacher.save_pretrained(root / "teacher")
    build_student(teacher, [0, 2, 4, 7, 9, 11]).save_pretrained(root / "student")
    rng = np.random.default_rng(seed)
    sequences = []
    for length in rng.integers(32, 129, size=n_sequences):
        body = rng.integers(1000, 30522, size=length - 2)
        sequences.append(np.concatenate([[SPECIAL["cls"]], body, [SPECIAL["sep"]]]))
    write_token_dataset(root / "data", sequences, vocab_size=30522, special_ids=SPECIAL, max_len=128)
    return root / "teacher", root / "student", root / "data"


def run_distilkit(teacher: Path, student: Path, data: Path, out: Path, steps: int, warmup: int) -> dict:
    config = DistillConfig(
        teacher=str(teacher), student=str(student), data=str(data), out=str(out), batch_size=32,
        max_steps=steps + warmup, save_every=10**9, tensorboard=False, device="cpu", precision="fp32",
    )  # fmt: skip
    distill(config)
    records = read_jsonl(out / "metrics.jsonl")
    timed = records[warmup:]
    seconds = timed[-1]["elapsed"] - records[warmup - 1]["elapsed"] if warmup else timed[-1]["elapsed"]
    return {"tokens": sum(r["tokens"] for r in timed), "seconds": seconds, "steps": len(timed)}


def run_baseline(teacher_dir: Path, student_dir: Path, data_dir: Path, steps: int, warmup: int, seed: int) -> dict:
    """A plain distiller step: random batches padded to the batch max, full-vocabulary logits everywhere."""
    data = TokenDataset(data_dir)
    teacher = BertForMaskedLM.from_pretrained(teacher_dir).eval().requires_grad_(False)
    student = BertForMaskedLM.from_pretrained(student_dir).train()
    optimizer = build_optimizer(student, 5e-4, 0.0)
    scheduler = linear_schedule(optimizer, 0, steps + warmup)
    weights = selection_weights(data.token_counts, data.meta["special_token_ids"], 0.7)
    order = np.random.default_rng(seed).permutation(len(data))
    tokens, started = 0, None
    for step in range(steps + warmup):
        if step == warmup:
            tokens, started = 0, time.perf_counter()
        batch = [torch.from_numpy(data[int(i)]) for i in order[step * 32 : (step + 1) * 32]]
        masked, labels = mask_sequences(
            batch, weights, mask_id=SPECIAL["mask"], vocab_size=30522, spec=MaskingSpec(),
            generator=step_generator(seed, step),
        )  # fmt: skip
        input_ids, attention_mask = pad_batch(masked, 0)
        label_ids = pad_batch(labels, -100)[0]
        with torch.no_grad():
            t_out = teacher(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        s_out = student(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        select = (label_ids != -100).unsqueeze(-1)
        s_logits = s_out.logits.masked_select(select).view(-1, 30522)
        t_logits = t_out.logits.masked_select(select).view(-1, 30522)
        kl = F.kl_div(F.log_softmax(s_logits / 2, -1), F.softmax(t_logits / 2, -1), reduction="batchmean") * 4
        mlm = F.cross_entropy(s_out.logits.view(-1, 30522), label_ids.view(-1), ignore_index=-100)
        keep = attention_mask.bool().unsqueeze(-1)
        s_hidden = s_out.hidden_states[-1].masked_select(keep).view(-1, 256)
        t_hidden = t_out.hidden_states[-1].masked_select(keep).view(-1, 256)
        cos = F.cosine_embedding_loss(s_hidden, t_hidden, torch.ones(len(s_hidden)))
        (5 * kl + 2 * mlm + cos).backward()
        optimizer_step(student, optimizer, scheduler, None, 5.0)
        tokens += int(attention_mask.sum())
    return {"tokens": tokens, "seconds": time.perf_counter() - started, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--sequences", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="distilkit-train-bench-"))
    try:
        teacher, student, data = build_workload(root, args.sequences, args.seed)
        ours = run_distilkit(teacher, student, data, root / "run", args.steps, args.warmup)
        base = run_baseline(teacher, student, data, args.steps, args.warmup, args.seed)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ours_tps, base_tps = ours["tokens"] / ours["seconds"], base["tokens"] / base["seconds"]
    result = {
        "benchmark": "train_throughput",
        "distilkit_tokens_per_s": round(ours_tps, 1),
        "baseline_tokens_per_s": round(base_tps, 1),
        "speedup": round(ours_tps / base_tps, 3),
        "target": ">= 2.0",
        "met": ours_tps / base_tps >= 2.0,
        "distilkit": ours,
        "baseline": base,
        "workload": "teacher BertForMaskedLM 12L/256/4H/FFN1024/vocab 30522 random; student 6L [0,2,4,7,9,11]; "
        f"{args.sequences} seqs of length 32-128; batch 32; loss 5 KL + 2 MLM + 1 cos, T=2",
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "device": "cpu"},
        "command": f"python benchmarks/train_throughput.py --steps {args.steps} --warmup {args.warmup}",
    }
    write_json(RESULTS / "train_throughput.json", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
