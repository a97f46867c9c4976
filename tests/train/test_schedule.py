"""Loss-weight and temperature schedules: values at the start, middle and end of a run; parse errors."""

import math

import pytest

from distilkit.errors import ConfigError
from distilkit.train.schedule import Schedule, parse_schedule


def test_constant_schedule_is_the_number_at_every_step():
    schedule = parse_schedule("4")
    assert schedule == Schedule("constant", 4.0, 4.0)
    assert [schedule.value(step, 10) for step in (0, 5, 10, 99)] == [4.0, 4.0, 4.0, 4.0]
    assert parse_schedule(2.0) == parse_schedule("2")  # a float field's old value reads as a constant


def test_linear_schedule_start_middle_end():
    schedule = parse_schedule("4:1")
    assert schedule == Schedule("linear", 4.0, 1.0)
    assert schedule.value(0, 10) == pytest.approx(4.0)
    assert schedule.value(5, 10) == pytest.approx(2.5)  # halfway: (4 + 1) / 2
    assert schedule.value(3, 12) == pytest.approx(3.25)  # a quarter of the way: 4 − 3/4
    assert schedule.value(10, 10) == pytest.approx(1.0)
    assert schedule.value(15, 10) == pytest.approx(1.0)  # past the end (a re-planned run) stays at the end


def test_cosine_schedule_start_middle_end():
    schedule = parse_schedule("cosine:4:1")
    assert schedule.value(0, 12) == pytest.approx(4.0)
    assert schedule.value(6, 12) == pytest.approx(2.5)  # cos(π/2) = 0: halfway, as for linear
    # A quarter of the way: 1 + 3·(1 + cos(π/4))/2 = 1 + 3·0.853553 = 3.560660 — above the line's 3.25.
    assert schedule.value(3, 12) == pytest.approx(3.560660, abs=1e-6)
    assert schedule.value(9, 12) == pytest.approx(1.0 + 3.0 * (1.0 - math.sqrt(0.5)) / 2.0)  # 1.439340
    assert schedule.value(12, 12) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("4", "4"), ("4.0", "4"), ("4:1", "4:1"), (" 0.5 : 2 ", "0.5:2"), ("linear:4:1", "4:1"),
     ("Cosine:4:1", "cosine:4:1"), ("1e-05:0.25", "1e-05:0.25")],
)  # fmt: skip
def test_str_gives_back_the_text_and_reads_back_the_same(text, canonical):
    schedule = parse_schedule(text)
    assert str(schedule) == canonical
    assert parse_schedule(str(schedule)) == schedule


def test_bounds_cover_every_value_of_the_run():
    assert parse_schedule("cosine:4:1").bounds() == (1.0, 4.0)
    assert parse_schedule("0:2").bounds() == (0.0, 2.0)
    assert parse_schedule("3").bounds() == (3.0, 3.0)


@pytest.mark.parametrize(
    "text", ["abc", "", "4:", ":1", "cosine:4", "step:4:1", "constant:4:1", "4:1:2", "1:2:3:4", "nan", "inf:1"]
)
def test_unreadable_schedules_are_one_line_config_errors(text):
    with pytest.raises(ConfigError) as error:
        parse_schedule(text, "--temperature")
    assert str(error.value) == f"--temperature: cannot read {text!r} as a schedule: use 4, 4:1 or cosine:4:1"


def test_value_rejects_a_run_without_steps():
    with pytest.raises(ValueError):
        parse_schedule("4:1").value(0, 0)
