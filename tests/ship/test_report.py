"""report: one self-contained HTML file with embedded PNG plots, from whatever pieces the runs hold."""

from __future__ import annotations

import base64
import json
import re

import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.errors import ConfigError
from distilkit.ship.report import ReportConfig, collect, report, write_report
from distilkit.ship.results import task_rows

pytest.importorskip("matplotlib", reason='needs the report extra: pip install "distilkit[report]"')


def _backend(p50: float, throughput: float) -> dict:
    figures = {"p95_ms": p50 * 1.2, "mean_ms": p50, "gflops": 10.0, "peak_fraction": 0.5, "n": 3}
    return {
        "status": "ok",
        "bytes": 1000,
        "batches": {
            "1": {**figures, "p50_ms": p50, "sequences_per_s": 1e3 / p50},
            "32": {**figures, "p50_ms": 32e3 / throughput, "sequences_per_s": throughput},
        },
    }


def bench_results(quality: bool = True) -> dict:
    models = {
        "teacher": {"params": 22_000_000, "backends": {"torch-fp32": _backend(20.0, 50.0)}},
        "student": {
            "params": 17_000_000,
            "backends": {
                "torch-fp32": _backend(10.0, 100.0),
                "onnx-int8": _backend(4.0, 300.0),
                "torch-bf16": {"status": "skipped", "reason": "no bf16"},
            },
        },
    }
    results = {
        "benchmark": "bench",
        "config": {"batch_sizes": [1, 32], "seq_len": 128},
        "peak": {"gflops": 400.0},
        "models": models,
        "ratios": {"student torch-fp32 / teacher torch-fp32": 2.0, "student onnx-int8 / teacher torch-fp32": 6.0},
    }
    if quality:
        results["quality"] = {"task": "sst2", "teacher": 0.90, "student": 0.87, "int8-student": 0.865}
    return results


@pytest.fixture
def runs(tmp_path):
    distill = tmp_path / "distill"
    distill.mkdir()
    (distill / "config.json").write_text(json.dumps({"command": "distill", "config": {"teacher": "t"}}))
    lines = [{"step": s, "loss": 3.0 / s, "terms": {"cos": 1.0 / s, "hidden": 2.0 / s}, "lr": 1e-4} for s in (1, 2, 3)]
    (distill / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 4, "lo')
    results = tmp_path / "results"
    results.mkdir()
    (results / "bench_backends.json").write_text(json.dumps(bench_results()))
    (results / "tasks.json").write_text(
        json.dumps({"tasks": {"sst2": {"teacher": {"accuracy": 0.9}, "student": {"accuracy": 0.87}}, "rte": "?"}})
    )
    (results / "serve_load.json").write_text(
        json.dumps({"benchmark": "serve_load", "requests": 2000, "concurrency": 32, "p50_ms": 5.0, "p95_ms": 9.0,
                    "p99_ms": 12.0, "errors": 0})
    )  # fmt: skip
    (results / "broken.json").write_text("{not json")
    quickstart = tmp_path / "quickstart"
    quickstart.mkdir()
    (quickstart / "quickstart.json").write_text(
        json.dumps({"before": {"cosine": 0.8, "nn_agreement@1": 0.5}, "after": {"cosine": 0.95, "nn_agreement@1": 0.8}})
    )
    return [distill, results, quickstart]


def test_report_is_one_self_contained_html_with_every_section(runs, tmp_path):
    out = write_report(runs, tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    images = re.findall(r'<img alt="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert len(images) == 4  # loss curves, quality retained, latency vs quality, throughput
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert not re.search(r"(src|href)=[\"']?(https?:|//|/static)", page)  # nothing fetched from anywhere
    for heading in ("Loss curves per term", "Quality retained per task", "Latency vs quality", "Speed per backend",
                    "Serving under load", "All figures"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page
    assert "no data in these runs" not in page
    assert "<td>int8 student</td><td class=n>4</td><td class=n>0.865</td>" in page  # latency vs quality table
    # Retention is computed when tasks.json does not give it.
    assert "<td>sst2</td><td class=n>0.9</td><td class=n>0.87</td><td class=n>0.9667</td>" in page


def test_report_renders_with_missing_pieces(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    page = report(ReportConfig((str(run),), str(tmp_path / "r.html"))).read_text()
    assert page.count("data:image/png;base64,") == 1 and page.count("no data in these runs") == 5


def test_latency_vs_quality_falls_back_to_tasks_and_the_export_guard(tmp_path):
    (tmp_path / "bench.json").write_text(json.dumps(bench_results(quality=False)))
    (tmp_path / "tasks.json").write_text(json.dumps([{"task": "sst2", "teacher": 0.9, "student": 0.85}]))
    export_dir = tmp_path / "int8"
    export_dir.mkdir()
    export = {"format": "int8", "kind": "classification", "guard": {"int8": {"score": 0.84}, "accepted": True}}
    (export_dir / "export.json").write_text(json.dumps(export))
    page = write_report([tmp_path], tmp_path / "r.html").read_text()
    assert "<td>teacher</td><td class=n>20</td><td class=n>0.9</td>" in page
    assert "<td>int8 student</td><td class=n>4</td><td class=n>0.84</td>" in page


def test_task_rows_read_the_shapes_we_know():
    assert task_rows({"sst2": {"teacher": 0.9, "student": 0.45, "retention": 0.5}}) == [
        {"task": "sst2", "teacher": 0.9, "student": 0.45, "retained": 0.5, "retained_sd": None, "note": ""}
    ]
    assert task_rows({"tasks": [{"task": "rte", "teacher": {"score": 0.6}}]})[0]["teacher"] == 0.6
    assert task_rows({"tasks": {"x": {"teacher": {"a": 1, "b": 2}}}}) == []  # ambiguous metrics are left out
    # benchmarks/tasks.py: main scores under "main", the task-distilled student, retention in percent.
    row = {"teacher": {"main": 0.9}, "student_ft": {"main": 0.8}, "student_kd": {"main": 0.87}, "retention_kd": 96.7}
    (parsed,) = task_rows({"tasks": {"sst2": row}})
    assert parsed["student"] == 0.87 and parsed["retained"] == pytest.approx(0.967) and parsed["note"] == ""


def test_seeds_give_a_spread_and_meaningless_retentions_are_marked():
    seeds = {"teacher": {"main": 0.8, "sd": 0.01, "seeds": [0.79, 0.8, 0.81]},
             "student_kd": {"main": 0.76, "sd": 0.02, "seeds": [0.74, 0.76, 0.78]}, "retention_kd": 95.0}  # fmt: skip
    near = {"teacher": {"main": 0.55}, "student_kd": {"main": 0.56}, "retention_meaningful": False}
    above = {"teacher": {"main": 6.0}, "student": {"main": 7.2}}  # SQuAD's 120% from an untrained teacher
    rows = {row["task"]: row for row in task_rows({"tasks": {"sst2": seeds, "rte": near, "squad": above}})}
    assert rows["sst2"]["retained_sd"] == pytest.approx(0.025) and rows["sst2"]["note"] == ""
    assert "trivial baseline" in rows["rte"]["note"] and "far above its teacher" in rows["squad"]["note"]


def test_each_results_file_gets_its_own_heading(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tasks.json").write_text(json.dumps({"tasks": {"sst2": {"teacher": 0.9, "student": 0.8}}}))
    page = write_report([tmp_path / "a", tmp_path / "b"], tmp_path / "r.html").read_text()
    assert page.count("<td>sst2</td>") == 2 and page.count("tasks.json</h3>") == 2


def test_collect_sorts_files_and_skips_unreadable_ones(runs):
    found = collect(runs)
    assert [len(found[k]) for k in ("distill", "quickstart", "bench", "tasks", "serve")] == [1, 1, 1, 1, 1]
    assert len(found["distill"][0][1]) == 3  # the torn last line of the log is skipped


def test_cli_takes_several_runs_after_one_flag(runs, tmp_path):
    out = tmp_path / "card.html"
    result = CliRunner().invoke(app, ["report", "--runs", *map(str, runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("data:image/png;base64,") == 4
    missing = CliRunner().invoke(app, ["report", "--runs", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not found" in missing.output
    with pytest.raises(ConfigError, match="at least one"):
        ReportConfig(())


def test_without_matplotlib_the_report_keeps_its_tables_and_says_how_to_get_plots(runs, tmp_path, monkeypatch):
    from distilkit.ship import report as report_module

    monkeypatch.setattr(report_module, "pyplot_or_none", lambda: None)
    page = write_report(runs, tmp_path / "plain.html").read_text()
    assert "data:image/png" not in page and 'pip install "distilkit[report]"' in page
    assert "<td>int8 student</td><td class=n>4</td><td class=n>0.865</td>" in page


def test_a_student_size_sweep_gets_its_table_and_quality_vs_speed_plot(tmp_path):
    sweep = {
        "metric": "STS-B test Spearman ×100",
        "metric_key": "stsb_spearman",
        "teacher": {"stsb_spearman": 80.0, "size_mib": 87.0},
        "students": [
            {"name": "2 layers", "before": {"stsb_spearman": 70.0}, "after": {"stsb_spearman": 76.0, "speedup": 2.9}},
            {"name": "3 layers", "before": {"stsb_spearman": 75.0}, "after": {"stsb_spearman": 79.0, "speedup": 2.0}},
            {"name": "4 layers", "before": {"stsb_spearman": 77.0}},  # still training: no point yet
        ],
    }
    (tmp_path / "embedding_students.json").write_text(json.dumps(sweep))
    found = collect([tmp_path / "embedding_students.json"])
    assert [label for label, _ in found["students"]] == [f"{tmp_path.name}/embedding_students.json"]
    page = write_report([tmp_path / "embedding_students.json"], tmp_path / "r.html").read_text()
    assert "<td>3 layers</td><td class=n>2</td><td class=n>75</td><td class=n>79</td><td>98.8%</td>" in page
    assert "4 layers" not in page.split("students of several sizes")[1].split("</table>")[0]
    assert page.count("data:image/png;base64,") == 1
