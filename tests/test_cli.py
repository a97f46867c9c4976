"""The pipeline commands' help and bad-input paths: one line on stderr, exit code 2, no traceback."""

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
        invoke(*base, "--student", str(tmp_path / "teacher"), "--data", str(tmp_path / "data"), "--alpha-ce", "-1"),
        "≥ 0",
    )
    assert_one_line_error(
        invoke(*base, "--student", str(tmp_path / "narrow"), "--data", str(tmp_path / "data"), "--alpha-ce", "0",
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
