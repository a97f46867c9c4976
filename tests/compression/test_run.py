"""compress end to end on a tiny teacher and tiny SST-2: front.json, report.html, a loadable model; a killed run
rerun with the same --out goes on from its finished candidates; unreachable targets and bad input fail up front."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from distilkit.cli import app
from distilkit.compression.config import CompressConfig
from distilkit.compression.run import compress
from distilkit.errors import ConfigError, DistilkitError
from tasks.tiny_tasks import one_thread  # noqa: F401 (autouse fixture)


class Interrupt:
    """A progress callback that records events and raises KeyboardInterrupt (a kill) at the n-th training run."""

    def __init__(self, at_run: int | None = None) -> None:
        self.at_run, self.runs, self.events = at_run, 0, []

    def __call__(self, event: dict) -> None:
        self.events.append(event)
        if event.get("event") == "start":
            self.runs += 1
            if self.runs == self.at_run:
                raise KeyboardInterrupt

    def trained(self, round_index: int) -> list[str]:
        """The candidates this process trained in a round (names from the round's result lines)."""
        stage = f"round {round_index}"
        return [e["message"].split(":")[0] for e in self.events if e.get("stage") == stage]


@pytest.mark.slow
def test_compress_ships_a_front_a_report_and_a_model_and_resumes(flags, tmp_path):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "out"
    config = CompressConfig(**flags(out, max_latency_ms=1000.0, max_candidates=3))
    killed = Interrupt(at_run=2)  # killed while the second candidate of round 0 trains
    with pytest.raises(KeyboardInterrupt):
        compress(config, callback=killed)
    first = killed.trained(0)
    assert len(first) == 1
    marker = out / "work" / "candidates" / first[0] / "round-0.json"
    finished = marker.stat().st_mtime_ns

    resumed = Interrupt()
    result = compress(config, callback=resumed)
    assert first[0] not in resumed.trained(0) and len(resumed.trained(0)) == 2  # the finished one is not redone
    assert marker.stat().st_mtime_ns == finished
    assert len(resumed.trained(1)) == 2  # 3 candidates, η = 2: the best 2 train longer

    front = json.loads((out / "front.json").read_text())
    assert len(front["candidates"]) == 7  # 4 depths × 2 widths, less the teacher's own shape
    trained = [c for c in front["candidates"] if c["selection_score"] is not None]
    assert len(trained) == 3 and all(c["measured_ms"] > 0 and c["bytes"] > 0 for c in trained)
    assert all(c["predicted_ms"] > 0 and c["params"] > 0 for c in front["candidates"])
    first_round = {c["rounds"][0]["steps"] for c in trained}
    second_round = [c["rounds"][1]["steps"] for c in trained if len(c["rounds"]) == 2]
    assert len(first_round) == 1 and len(set(second_round)) == 1 and second_round[0] >= first_round.pop()  # alike
    chosen = next(c for c in front["candidates"] if c["status"] == "chosen")
    assert chosen["name"] == front["chosen"] == result.chosen and len(chosen["rounds"]) == 2
    final = front["final"]
    assert final["target_met"] and final["measured_ms"] > 0 and final["dev_score"] is not None
    assert final["predicted_ms"] == pytest.approx(chosen["predicted_ms"])
    assert front["teacher"]["selection_score"] is not None and front["teacher"]["measured_ms"] > 0
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (chosen["layers"], chosen["hidden"])
    page = (out / "report.html").read_text()
    assert "<svg" in page and f"{chosen['name']} (chosen)" in page and "teacher" in page
    assert all(c["name"] in page for c in front["candidates"])

    again = Interrupt()  # everything is done: a third run trains nothing and reports the same
    assert compress(config, callback=again).chosen == result.chosen and again.runs == 0


@pytest.mark.slow
def test_a_retention_target_ships_the_fastest_candidate_that_keeps_it(flags, tmp_path):
    out = tmp_path / "out"
    result = compress(CompressConfig(**flags(out, min_retention=50.0, max_candidates=2, depths="1,2", widths="32")))
    front = json.loads((out / "front.json").read_text())
    trained = {c["name"]: c for c in front["candidates"] if c["selection_score"] is not None}
    assert front["target"]["name"] == "min_retention" and front["target"]["latency_limit_ms"] is None
    assert set(trained) == {"1x32", "2x32"}  # the front's two shapes, both under no latency limit
    keeping = [name for name, c in trained.items() if c["retention"] >= 50.0]
    expected = min(keeping, key=lambda name: trained[name]["predicted_ms"]) if keeping else None
    assert result.target_met == bool(keeping) and (expected is None or result.chosen == expected)


@pytest.mark.slow
def test_unreachable_target_is_said_up_front_with_the_fastest_prediction(flags, tmp_path):
    config = CompressConfig(**flags(tmp_path / "out", max_latency_ms=1e-6))
    with pytest.raises(ConfigError, match=r"no candidate can meet --max-latency-ms 1e-06: the fastest, .* is "
                                          r"predicted at [0-9.]+ ms on torch-fp32"):  # fmt: skip
        compress(config)
    assert not list((tmp_path / "out" / "work").glob("candidates"))  # nothing was trained


def test_missing_data_fails_before_any_timing(flags, tmp_path):
    config = CompressConfig(**flags(tmp_path / "out", min_speedup=2.0, data=str(tmp_path)))
    with pytest.raises(DistilkitError):
        compress(config)
    assert not (tmp_path / "out" / "work" / "cost.json").exists()


def test_a_rerun_with_other_settings_is_refused(flags, tmp_path):
    out = tmp_path / "out"
    (out / "work").mkdir(parents=True)
    (out / "work" / "cost.json").write_text("{}")
    (out / "compress.json").write_text(json.dumps({"flags": {"max_latency_ms": 3.0}}))
    with pytest.raises(ConfigError, match="holds a compress run with other settings"):
        compress(CompressConfig(**flags(out, max_latency_ms=5.0)))


def test_cli_contradictory_targets_are_one_line_and_exit_2(tiny_teacher, tmp_path):
    arguments = ["--teacher", tiny_teacher["teacher"], "--task", "sst2", "--data", tiny_teacher["data"], "--out",
             str(tmp_path / "out"), "--max-latency-ms", "5", "--min-speedup", "2"]  # fmt: skip
    result = CliRunner().invoke(app, ["compress", *arguments])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: give one target") and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
