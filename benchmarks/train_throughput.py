"""Training tokens/s of `distilkit distill` vs a plain baseline distiller, side by side in one run.

Workload (issue #3): teacher BertForMaskedLM, 12 layers, hidden 256, 4 heads, FFN 1024, vocab 30522,
random init; student 6 layers copied from teacher layers [0, 2, 4, 7, 9, 11]; 4096 sequences of random
length 32–128; batch 32; triple loss 5/2/1 at T=2.

distilkit: the real `distill()` (length-grouped batches, dynamic padding, vocabulary logits only at the
masked positions). Against two rungs of the loop a user writes from the paper (`plain_loop`): "plain" runs the
vocabulary heads at every position and indexes the masked rows; "plain_masked_heads" runs the heads on the
masked rows only, so each of distilkit's gains is visible on its own. Throughput counts real (non-pad) tokens.
Run it alone on the machine. Prints one JSON line; writes benchmarks/results/train_throughput.json.

    flock /tmp/distilkit-bench.lock python benchmarks/train_throughput.py [--steps 40] [--warmup 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM

from common import RESULTS, cpu_info
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


def plain_loop(
    teacher_dir: Path, student_dir: Path, data_dir: Path, steps: int, warmup: int, seed: int, heads: str
) -> dict:
    """The loop a user writes from the DistilBERT paper: random order, batches padded to their longest sequence,
    the same masking (80/10/10, smoothed), masked rows taken by boolean indexing, KL·T² on them, the MLM
    cross-entropy on the masked rows only, cosine on the real tokens' last hidden states, AdamW, clipping.
    heads="all": both models' vocabulary heads run at every position (`model(...).logits`, the plain way);
    heads="masked": the encoders run, then the heads only on the masked rows — the second rung."""
    data = TokenDataset(data_dir)
    teacher = BertForMaskedLM.from_pretrained(teacher_dir).eval().requires_grad_(False)
    student = BertForMaskedLM.from_pretrained(student_dir).train()
    optimizer = build_optimizer(student, 5e-4, 0.0)
    scheduler = linear_schedule(optimizer, 0, steps + warmup)
    weights = selection_weights(data.token_counts, data.meta["special_token_ids"], 0.7)
    order = np.random.default_rng(seed).permutation(len(data))
    tokens, started = 0, None

    def logits_and_hidden(model: BertForMaskedLM, input_ids, attention_mask, masked):
        if heads == "all":
            out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return out.logits[masked], out.hidden_states[-1]
        hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return model.cls(hidden[masked]), hidden

    for step in range(steps + warmup):
        if step == warmup:
            tokens, started = 0, time.perf_counter()
        batch = [torch.from_numpy(data[int(i)]) for i in order[step * 32 : (step + 1) * 32]]
        masked_ids, labels = mask_sequences(
            batch, weights, mask_id=SPECIAL["mask"], vocab_size=30522, spec=MaskingSpec(),
            generator=step_generator(seed, step),
        )  # fmt: skip
        input_ids, attention_mask = pad_batch(masked_ids, 0)
        label_ids = pad_batch(labels, -100)[0]
        masked = label_ids != -100
        with torch.no_grad():
            t_logits, t_hidden = logits_and_hidden(teacher, input_ids, attention_mask, masked)
        s_logits, s_hidden = logits_and_hidden(student, input_ids, attention_mask, masked)
        kl = F.kl_div(F.log_softmax(s_logits / 2, -1), F.softmax(t_logits / 2, -1), reduction="batchmean") * 4
        mlm = F.cross_entropy(s_logits, label_ids[masked])
        real = attention_mask.bool()
        cos = F.cosine_embedding_loss(s_hidden[real], t_hidden[real], torch.ones(int(real.sum())))
        (5 * kl + 2 * mlm + cos).backward()
        optimizer_step(student, optimizer, scheduler, None, 5.0)
        tokens += int(attention_mask.sum())
    return {"tokens": tokens, "seconds": time.perf_counter() - started, "steps": steps}


CONTENDERS = ("distilkit", "plain", "plain_masked_heads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per contender and repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all contenders, order alternating")
    parser.add_argument("--sequences", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="distilkit-train-bench-"))
    runs = []
    try:
        teacher, student, data = build_workload(root, args.sequences, args.seed)
        contenders = {
            "distilkit": lambda: run_distilkit(teacher, student, data, root / "run", args.steps, args.warmup),
            "plain": lambda: plain_loop(teacher, student, data, args.steps, args.warmup, args.seed, "all"),
            "plain_masked_heads": lambda: plain_loop(teacher, student, data, args.steps, args.warmup, args.seed,
                                                     "masked"),
        }  # fmt: skip
        for repeat in range(args.repeats):  # A B C, then C B A: drift in the machine's speed hits all alike
            for name in CONTENDERS if repeat % 2 == 0 else reversed(CONTENDERS):
                shutil.rmtree(root / "run", ignore_errors=True)
                run = contenders[name]()
                runs.append(
                    {"contender": name, "repeat": repeat, **run, "tokens_per_s": run["tokens"] / run["seconds"]}
                )
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    median = {name: statistics.median(r["tokens_per_s"] for r in runs if r["contender"] == name) for name in CONTENDERS}
    speedup = median["distilkit"] / median["plain"]
    result = {
        "benchmark": "train_throughput",
        "tokens_per_s_median": {name: round(value, 1) for name, value in median.items()},
        "speedup_vs_plain": round(speedup, 3),
        "speedup_vs_plain_masked_heads": round(median["distilkit"] / median["plain_masked_heads"], 3),
        "masked_heads_vs_plain": round(median["plain_masked_heads"] / median["plain"], 3),
        "target": ">= 2.0 vs plain", "met": speedup >= 2.0, "runs": runs,
        "workload": "teacher BertForMaskedLM 12L/256/4H/FFN1024/vocab 30522 random; student 6L [0,2,4,7,9,11]; "
        f"{args.sequences} seqs of length 32-128; batch 32; loss 5 KL + 2 MLM + 1 cos, T=2; fp32",
        "protocol": f"{args.warmup} warm-up + {args.steps} timed steps per run; {args.repeats} repeats, order "
        "alternating (A B C, C B A); medians of tokens/s (real tokens, no padding); every run in runs",
        "machine": {"cpu": cpu_info(), "threads": args.threads, "device": "cpu", "torch": torch.__version__},
        "command": f"flock /tmp/distilkit-bench.lock python benchmarks/train_throughput.py --steps {args.steps} "
        f"--warmup {args.warmup} --repeats {args.repeats} --threads {args.threads}",
    }  # fmt: skip
    write_json(RESULTS / "train_throughput.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
