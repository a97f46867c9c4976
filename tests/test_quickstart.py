"""quickstart end to end on a tiny teacher: prepare → init-student → distill → compare → report card."""

import json

import numpy as np

from distilkit.quickstart import QuickstartConfig, quickstart
from tiny import WORDS, make_model


def test_quickstart_runs_the_whole_pipeline(tmp_path):
    make_model(tmp_path / "teacher", "bert", mlm=False, layers=2)
    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS, size=12)) for _ in range(120)) + "\n")
    events = []
    summary = quickstart(
        QuickstartConfig(out=str(tmp_path / "qs"), teacher=str(tmp_path / "teacher"), corpus=str(corpus),
                         num_layers=1, time_budget=3, heldout=20, batch_size=8),
        callback=events.append,
    )  # fmt: skip
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages[0] == "prepare" and "distill" in stages and stages.count("compare") == 2
    for side in ("before", "after"):
        assert 0 <= summary[side]["nn_agreement@1"] <= 1 and -1 <= summary[side]["cosine"] <= 1.0001
        assert summary[side]["student_params"] < summary[side]["teacher_params"]
    assert summary["distill"]["steps"] >= 1
    saved = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert saved["after"] == summary["after"]
    assert "data:image/png;base64" in (tmp_path / "qs" / "report.html").read_text()
