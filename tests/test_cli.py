"""The pipeline commands' help and bad-input paths: one line on stderr, exit code 2, no traceback."""

import importlib
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from tiny import make_model, write_token_data

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_help_lists_every_pipeline_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("prepare", "init-student", "distill", "quickstart"):
        assert command in result.output
        assert invoke(command, "--help").exit_code == 0


def test_prepare_bad_inputs(tmp_path):
    make_model(tmp_path / "teacher", "bert", layers=2)
    teacher = str(tmp_path / "teacher")
    assert_one_line_error(
        invoke(
            "prepare", "--teacher", teacher, "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")
        ),
        "missing.txt",
    )
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(
        invoke("prepare", "--teacher", teacher, "--corpus", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")),
        "empty.txt",
    )
    (tmp_path / "ok.txt").write_text("the sea\n")
    assert_one_line_error(
        invoke("prepare", "--teacher", str(tmp_path / "nope"), "--corpus", str(tmp_path / "ok.txt"), "--out", "o"),
        "not found",
    )
    assert not (tmp_path / "o").exists()


def test_init_student_bad_inputs(tmp_path):
    make_model(tmp_path / "teacher", "bert", layers=2)
    assert_one_line_error(invoke("init-student", "--teacher", str(tmp_path / "x"), "--out", "s"), "not found")
    assert_one_line_error(
        invoke("init-student", "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "s"), "--layers", "5"),
        "do not exist",
    )
    (tmp_path / "config-only").mkdir()
    (tmp_path / "config-only" / "config.json").write_text((tmp_path / "teacher" / "config.json").read_text())
    assert_one_line_error(
        invoke("init-student", "--teacher", str(tmp_path / "config-only"), "--out", str(tmp_path / "s")), "no weights"
    )


def test_distill_bad_inputs(tmp_path):
    make_model(tmp_path / "teacher", "bert", layers=2)
    make_model(tmp_path / "narrow", "bert", layers=1, hidden=16)
    write_token_data(tmp_path / "data", 16)
    base = ["distill", "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "run")]
    assert_one_line_error(
        invoke(*base, "--student", str(tmp_path / "teacher"), "--data", str(tmp_path / "nodata")), "nodata"
    )
    assert_one_line_error(
        invoke(*base, "--student", str(tmp_path / "teacher"), "--data", str(tmp_path / "data"), "--alpha-kl", "-1"),
        "≥ 0",
    )
    assert_one_line_error(
        invoke(*base, "--student", str(tmp_path / "narrow"), "--data", str(tmp_path / "data"), "--alpha-kl", "0",
               "--alpha-mlm", "0"),
        "hidden size",
    )  # fmt: skip
    assert_one_line_error(
        invoke(*base, "--student", str(tmp_path / "teacher"), "--data", str(tmp_path / "data"), "--batch-size", "64"),
        "fewer than one global batch",
    )


def test_quickstart_bad_corpus(tmp_path):
    assert_one_line_error(
        invoke("quickstart", "--out", str(tmp_path / "q"), "--corpus", str(tmp_path / "none.txt")), "none.txt"
    )


def test_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "distilkit.cli", "init-student", "--teacher", str(tmp_path / "nope"), "--out", "x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--precision", "--device"])
def test_distill_rejects_unknown_choices(tmp_path, flag):
    make_model(tmp_path / "teacher", "bert", layers=2)
    write_token_data(tmp_path / "data", 16)
    value = "fp8" if flag == "--precision" else "cuda"
    result = invoke("distill", "--teacher", str(tmp_path / "teacher"), "--student", str(tmp_path / "teacher"),
                    "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), flag, value)  # fmt: skip
    assert_one_line_error(result, flag)


def test_sigterm_mid_prepare_leaves_no_temporary_directory(tmp_path):
    """A terminated prepare exits 130 and removes its half-built output."""
    import signal
    import time

    make_model(tmp_path / "teacher", "bert", layers=2)
    corpus = tmp_path / "big.txt"
    corpus.write_text("the sea and the whale\n" * 400_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "distilkit.cli", "prepare", "--teacher", str(tmp_path / "teacher"), "--corpus",
         str(corpus), "--out", str(tmp_path / "out"), "--batch-lines", "256"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name.startswith(".out.") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "teacher"]


# ---------------------------------------------------------------- output off a terminal (logs, pipes, CI)
ONNX_HINT = 'pip install "distilkit[onnx]"'


def _bench_results() -> dict:
    """What `distilkit bench` returns, for a teacher and student with one backend measured and one skipped."""
    figures = {"p50_ms": 12.5, "p95_ms": 14.0, "sequences_per_s": 321.0, "gflops": 45.0, "peak_fraction": 0.25, "n": 8}
    measured = {"status": "ok", "bytes": 3 * 2**20, "batches": {"1": figures, "32": figures}}
    skipped = {"status": "skipped", "reason": f"ONNX Runtime is not installed — {ONNX_HINT}"}
    models = {role: {"params": 1000, "backends": {"torch-fp32": measured, "onnx-int8": skipped}}
              for role in ("teacher", "student")}  # fmt: skip
    ratios = {"teacher torch-fp32 / teacher torch-fp32": 1.0, "student torch-fp32 / teacher torch-fp32": 2.0}
    return {"config": {"seq_len": 128, "batch_sizes": [1, 32]}, "machine": {"threads": 2}, "peak": {"gflops": 180.0},
            "models": models, "ratios": ratios}  # fmt: skip


def test_bench_table_off_a_terminal_is_full_width_and_literal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal's setting does not fold a table written to a pipe
    bench_module = importlib.import_module("distilkit.ship.bench")
    monkeypatch.setattr(bench_module, "bench", lambda config, callback=None: _bench_results())
    result = invoke("bench", "--teacher", "t", "--student", "s", "--batch-sizes", "1,32")
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output
    rows = [line.split() for line in result.output.splitlines() if line.split()[:1] in (["teacher"], ["student"])]
    assert ["teacher", "torch-fp32", "3.0", "12.5", "14.0", "321.0", "45", "25%", "1.00"] in rows, result.output
    assert ["student", "torch-fp32", "3.0", "12.5", "14.0", "321.0", "45", "25%", "2.00"] in rows
    assert ["student", "onnx-int8", "skipped"] in rows
    for header in ("model", "backend", "MiB", "p50 ms", "p95 ms", "seq/s", "b=32", "GFLOP/s", "peak", "teacher"):
        assert header in result.output
    assert "seq len 128, 2 threads, fp32 matmul peak 180 GFLOP/s" in result.output
    # Why a backend was skipped: on one line, the extra's [onnx] kept (not eaten as markup).
    assert f"teacher onnx-int8 skipped: ONNX Runtime is not installed — {ONNX_HINT}" in result.output.splitlines()


def test_error_text_prints_literally_not_as_markup(monkeypatch, tmp_path):
    from distilkit.errors import ConfigError

    def missing_extra():
        raise ConfigError(f"ONNX export and ONNX Runtime need the onnx extra — {ONNX_HINT} [bold]not bold[/]")

    monkeypatch.setattr(importlib.import_module("distilkit.ship.export"), "require_onnx", missing_extra)
    result = invoke("export", "--model", str(tmp_path), "--format", "onnx", "--out", str(tmp_path / "o"))
    assert_one_line_error(result, f"{ONNX_HINT} [bold]not bold[/]")


def test_progress_off_a_terminal_is_plain_lines(capsys):
    from distilkit.cli.app import TrainProgress

    with TrainProgress("distill", interval=3600) as progress:
        assert progress.plain  # pytest's captured stderr is not a terminal
        progress({"event": "stage", "stage": "data", "message": f"reading [data] — {ONNX_HINT}"})
        progress({"event": "start", "total_steps": 100, "step": 0})
        for step in range(1, 101):
            progress({"event": "step", "step": step, "total_steps": 100, "loss": 1.0 / step, "terms": {"kl": 0.5}})
        progress({"event": "teacher-logits", "done": 3, "total": 10})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"data: reading [data] — {ONNX_HINT}"
    # Phase start, phase end, and nothing in between within the interval: no bar, no cursor codes.
    assert lines[1].startswith("distill: 0/100 (0%)") and "elapsed" in lines[1]
    assert lines[2].startswith("distill: 100/100 (100%)  loss=0.0100 kl=0.5000") and "left" not in lines[2]
    assert lines[3].startswith("teacher logits: 3/10 (30%)")
    assert len(lines) == 4 and not any("\x1b" in line or "━" in line for line in lines), lines


def test_progress_off_a_terminal_prints_every_interval(capsys):
    from distilkit.cli.app import TrainProgress

    with TrainProgress("train", interval=0) as progress:
        progress({"event": "start", "total_steps": 4, "step": 0})
        for step in range(1, 4):
            progress({"event": "step", "step": step, "total_steps": 4, "loss": 0.5, "terms": {}})
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["train: 0/4 (0%)", "train: 1/4 (25%)", "train: 2/4 (50%)",
                                                      "train: 3/4 (75%)"]  # fmt: skip
    assert "left" in lines[-1]
