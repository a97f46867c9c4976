"""Candidates, the predicted front and successive halving's bookkeeping (pure functions, hand-worked cases)."""

from __future__ import annotations

import pytest

from distilkit.compression.cost import Shape
from distilkit.compression.search import candidate_shapes, pick, predicted_front, ranked, round_sizes
from distilkit.errors import ConfigError

TEACHER = Shape(layers=6, hidden=384, heads=12, ffn=1536)  # MiniLM-L6: heads of 32


def test_candidates_are_smaller_than_the_teacher_in_whole_heads():
    shapes = candidate_shapes(TEACHER, None, None)
    assert {s.hidden for s in shapes} == {96, 192, 288, 384} and {s.layers for s in shapes} == set(range(1, 7))
    assert Shape(6, 384, 12, 1536) not in shapes and len(shapes) == 4 * 6 - 1
    assert Shape(3, 192, 6, 1536) in shapes  # the teacher's FFN is kept: init-student narrows width and heads
    assert candidate_shapes(TEACHER, "2,3", "384") == [Shape(2, 384, 12, 1536), Shape(3, 384, 12, 1536)]


@pytest.mark.parametrize(
    ("teacher", "depths", "widths", "message"),
    [
        (Shape(1, 32, 1, 64), None, None, "nothing to search: the teacher (1 layer(s), 1 head(s))"),
        (TEACHER, "8", None, "--depths: the teacher has 6 layers"),
        (TEACHER, None, "100", "--widths [100] do not fit"),
    ],
)
def test_a_teacher_the_search_cannot_shrink_is_a_config_error(teacher, depths, widths, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        candidate_shapes(teacher, depths, widths)


def candidate(name, ms, params):
    return {"name": name, "predicted_ms": ms, "params": params}


def test_front_keeps_what_nothing_beats_on_both_latency_and_size():
    shapes = [candidate("a", 1, 10), candidate("b", 2, 8), candidate("c", 2, 20), candidate("d", 3, 15),
              candidate("e", 4, 30)]  # fmt: skip
    assert [c["name"] for c in predicted_front(shapes)] == ["a", "c", "e"]  # b: slower and smaller than a


def test_pick_prefers_large_shapes_under_a_limit_and_spreads_for_retention():
    front = [candidate(str(i), i, i) for i in range(9)]
    assert [c["name"] for c in pick(front, 3, retention_target=False)] == ["6", "7", "8"]
    assert [c["name"] for c in pick(front, 3, retention_target=True)] == ["0", "4", "8"]
    assert pick(front[:2], 3, retention_target=True) == front[:2]


def test_round_sizes_halve_until_one_is_left():
    assert round_sizes(8, 2) == [8, 4, 2] and round_sizes(7, 2) == [7, 4, 2]
    assert round_sizes(9, 3) == [9, 3] and round_sizes(2, 2) == [2] and round_sizes(1, 2) == [1]


def result(name, ms, score, retention):
    return {"name": name, "predicted_ms": ms, "score": score, "retention": retention}


def test_ranking_by_score_or_by_speed_at_the_retention_target():
    results = [result("fast", 1, 0.80, 90.0), result("mid", 2, 0.86, 97.0), result("slow", 3, 0.88, 99.0),
               result("quick", 1.5, 0.84, 95.0)]  # fmt: skip
    assert [r["name"] for r in ranked(results, None)] == ["slow", "mid", "quick", "fast"]
    # keep 97%: "mid" is the fastest that does; the faster ones that do not yet follow, best score first
    assert [r["name"] for r in ranked(results, 97.0)] == ["mid", "quick", "fast", "slow"]
    # none keeps 99.5%: the best scores first (the likeliest to get there)
    assert ranked(results, 99.5)[0]["name"] == "slow"
