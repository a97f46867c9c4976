"""CompressConfig: every contradictory or invalid flag is one ConfigError, before any work."""

from __future__ import annotations

import pytest

from distilkit.compression.config import CompressConfig, parse_sizes
from distilkit.errors import ConfigError

BASE = {"teacher": "teacher", "task": "sst2", "data": "data", "out": "out"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({}, "give one target: --max-latency-ms, --min-speedup or --min-retention (got none)"),
        ({"max_latency_ms": 5, "min_speedup": 2}, "(got --max-latency-ms and --min-speedup)"),
        ({"max_latency_ms": 5, "backend": "tensorrt"}, "--backend must be one of torch-fp32, torch-bf16"),
        ({"min_speedup": 0.5}, "--min-speedup must be > 1"),
        ({"min_retention": 120}, "--min-retention is a percentage"),
        ({"max_latency_ms": -1}, "--max-latency-ms must be > 0"),
        ({"max_latency_ms": 5, "depths": "2,x"}, "--depths must be comma-separated integers"),
        ({"max_latency_ms": 5, "widths": "0"}, "--widths must list positive integers"),
        ({"max_latency_ms": 5, "layers": "best"}, "--layers must be spread or probe"),
        ({"max_latency_ms": 5, "eta": 1}, "--eta must be ≥ 2"),
        ({"max_latency_ms": 5, "search_fraction": 1.0}, "--search-fraction in (0, 1)"),
        ({"max_latency_ms": 5, "selection_fraction": 0.0}, "--selection-fraction must be in (0, 1)"),
    ],
)
def test_invalid_flags_are_one_config_error(flags, message):
    with pytest.raises(ConfigError) as error:
        CompressConfig(**BASE, **flags)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        CompressConfig(**BASE, min_speedup=2, min_retention=90, backend="gpu", batch_size=0)
    assert str(error.value).count(";") == 2  # the targets, the backend, the batch size


def test_the_task_is_checked_as_task_distill_checks_it(tmp_path):
    with pytest.raises(ConfigError, match="no-such-task"):
        CompressConfig(**{**BASE, "task": "no-such-task"}, max_latency_ms=5)


def test_target_and_sizes():
    assert parse_sizes("4, 2,2", "--depths") == (2, 4) and parse_sizes(None, "--depths") is None
