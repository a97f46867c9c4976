"""The finetune, task-distill and evaluate commands: a tiny end-to-end run, and every user error as one line
on stderr with exit code 2 and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from tasks.tiny_tasks import base_encoder, one_thread, rte_dir, sst2_dir  # noqa: F401 (one_thread: autouse fixture)

runner = CliRunner()
TINY = ["--max-len", "32", "--batch-size", "8"]


def invoke(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    encoder = base_encoder(root / "encoder")
    data = sst2_dir(root)
    teacher = invoke("finetune", "--model", encoder, "--task", "sst2", "--data", data, "--out", root / "teacher",
                     "--max-steps", "2", *TINY)  # fmt: skip
    assert teacher.exit_code == 0, teacher.output
    assert "model saved to" in teacher.output
    student = invoke("task-distill", "--teacher", root / "teacher", "--student", base_encoder(root / "s", layers=1),
                     "--task", "sst2", "--data", data, "--out", root / "student", "--max-steps", "2",
                     "--temperature", "3", *TINY)  # fmt: skip
    assert student.exit_code == 0, student.output
    return {"root": root, "encoder": encoder, "data": data}


def test_evaluate_prints_the_side_by_side_table(run):
    root = run["root"]
    result = invoke("evaluate", "--model", root / "student", "--teacher", root / "teacher", "--task", "sst2",
                    "--data", run["data"], "--speed-repeats", "2", "--out", root / "eval")  # fmt: skip
    assert result.exit_code == 0, result.output
    for fragment in ("accuracy", "quality retained", "speed-up", "teacher", "student"):
        assert fragment in result.output
    assert (root / "eval" / "evaluation.json").is_file()


def test_user_errors_are_one_line_with_exit_code_2(run, tmp_path):
    root, data, encoder = run["root"], run["data"], run["encoder"]
    base = ["--model", encoder, "--out", tmp_path / "o", *TINY]
    assert_one_line_error(invoke("finetune", *base, "--task", "sst3", "--data", data), "unknown task 'sst3'")
    assert_one_line_error(invoke("finetune", *base, "--task", "sst2", "--data", tmp_path / "none"), "does not exist")
    broken = tmp_path / "SST-2"
    broken.mkdir()
    (broken / "train.tsv").write_text("sentence\tlabel\nfine\t1\nbleak\tneg\n")
    assert_one_line_error(invoke("finetune", *base, "--task", "sst2", "--data", broken), "line 3: label 'neg'")
    (broken / "train.tsv").write_text("sentence\tscore\nfine\t1\n")
    assert_one_line_error(invoke("finetune", *base, "--task", "sst2", "--data", broken), "no column 'label'")
    (broken / "train.tsv").write_text("")
    assert_one_line_error(invoke("finetune", *base, "--task", "sst2", "--data", broken), "is empty")
    assert_one_line_error(
        invoke("evaluate", "--model", root / "teacher", "--task", "rte", "--data", rte_dir(tmp_path)),
        "has labels 0, 1 but task rte has entailment, not_entailment",
    )
    assert_one_line_error(
        invoke("evaluate", "--model", root / "teacher", "--task", "stsb", "--data", data), "predicts 2 labels"
    )
    assert_one_line_error(
        invoke("task-distill", "--teacher", encoder, "--student", encoder, "--task", "sst2", "--data", data,
               "--out", tmp_path / "o"),
        "has no task head",
    )  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_console_script_error_goes_to_stderr(run, tmp_path):
    command = [sys.executable, "-m", "distilkit.cli", "evaluate", "--model", str(run["root"] / "teacher"),
               "--task", "squad", "--data", run["data"]]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs a QuestionAnswering head" in lines[0], finished.stderr
    assert "Traceback" not in finished.stderr
