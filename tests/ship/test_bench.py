"""bench: every backend measured with the expected keys, FLOPs that match PyTorch's own count, config checks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.errors import ConfigError
from distilkit.ship.bench import BACKENDS, BenchConfig, bench, forward_flops, summary_rows
from distilkit.ship.onnx_graph import INT8_FILE, ONNX_FILE

pytest.importorskip("onnxruntime", reason='needs the onnx extra: pip install "distilkit[onnx]"')


def test_bench_measures_every_backend_of_both_models(ship_models, student_int8, tmp_path):
    # The student folder holds its exported graphs (as after `distilkit export`): bench times those; the teacher's
    # are exported on the fly.
    student = shutil.copytree(ship_models["student"], tmp_path / "student")
    for name in (ONNX_FILE, INT8_FILE):
        shutil.copy2(student_int8 / name, student / name)
    out = tmp_path / "bench.json"
    config = BenchConfig(
        str(ship_models["teacher"]), str(student), seq_len=16, batch_sizes=(1, 4), threads=1,
        warmup=1, repeats=2, rounds=1, peak_size=128, out=str(out), work_dir=str(tmp_path),
    )  # fmt: skip
    results = bench(config)
    assert json.loads(out.read_text())["models"].keys() == {"teacher", "student"}
    assert results["machine"]["threads"] == 1 and results["peak"]["gflops"] > 0
    assert {"torch_gflops", "onnxruntime_gflops"} <= results["peak"].keys()
    teacher, student = results["models"]["teacher"], results["models"]["student"]
    assert (teacher["layers"], student["layers"]) == (4, 2) and teacher["params"] > student["params"] > 0
    assert teacher["flops_per_sequence"] == pytest.approx(2 * student["flops_per_sequence"])
    for model in (teacher, student):
        assert model["kind"] == "classification" and set(model["backends"]) == set(BACKENDS)
        for backend, entry in model["backends"].items():
            if entry["status"] == "skipped":  # bf16 on a CPU without native bf16
                assert backend == "torch-bf16" and entry["reason"]
                continue
            assert set(entry["batches"]) == {"1", "4"} and entry["bytes"] > 0
            for figures in entry["batches"].values():
                assert figures["n"] == 2 and 0 < figures["p50_ms"] <= figures["p95_ms"]
                assert figures["sequences_per_s"] > 0 and figures["gflops"] > 0 and figures["peak_fraction"] > 0
    assert results["ratios"]["teacher torch-fp32 / teacher torch-fp32"] == pytest.approx(1.0)
    assert "student onnx-int8 / teacher torch-fp32" in results["ratios"]
    # int8 weights are smaller (a quarter for real models; tiny tensors carry relatively more overhead).
    assert student["backends"]["onnx-int8"]["bytes"] < student["backends"]["onnx-fp32"]["bytes"]
    assert student["backends"]["onnx-int8"]["bytes"] == (student_int8 / INT8_FILE).stat().st_size
    rows = summary_rows(results)
    assert len(rows) == 8 and {r["model"] for r in rows} == {"teacher", "student"}


def test_analytic_flops_match_pytorchs_flop_counter(ship_models):
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModel

    # Eager attention: the flop counter sees its matmuls (it has no formula for the CPU SDPA kernel).
    model = AutoModel.from_pretrained(ship_models["embedding"], add_pooling_layer=False, attn_implementation="eager")
    model.eval()
    batch, seq_len = 3, 24
    ids = torch.randint(5, 100, (batch, seq_len))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert forward_flops(model.config, seq_len) * batch == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_config_collects_every_problem():
    with pytest.raises(ConfigError) as raised:
        BenchConfig("t", "s", seq_len=1, batch_sizes=(0,), backends=("tensorrt",), repeats=0)
    message = str(raised.value)
    assert "--seq-len" in message and "--batch-sizes" in message and "tensorrt" in message and "--repeats" in message


def test_cli_prints_a_table_and_writes_json(ship_models, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app, ["bench", "--teacher", str(ship_models["teacher"]), "--student", str(ship_models["student"]),
              "--seq-len", "8", "--batch-sizes", "1,2", "--backends", "torch-fp32", "--repeats", "1", "--rounds", "1",
              "--warmup", "0", "--threads", "1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "teacher" in result.output and "student" in result.output and out.is_file()
    # Not a terminal: every cell in full on its row ("teacher", not "teach…").
    cells = [line.replace("│", " ").split() for line in result.output.splitlines()]
    assert {(row[0], row[1]) for row in cells if len(row) > 2} >= {("teacher", "torch-fp32"), ("student", "torch-fp32")}
    assert "…" not in result.output, result.output
    bad = CliRunner().invoke(app, ["bench", "--teacher", "x", "--student", "y", "--batch-sizes", "1,a"])
    assert bad.exit_code == 2 and "--batch-sizes must be comma-separated integers" in bad.output
