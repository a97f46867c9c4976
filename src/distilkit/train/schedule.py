"""Schedules for a loss weight or the temperature over a run: "4" (constant), "4:1" (linear), "cosine:4:1".

A schedule is a pure function of ``(step, total_steps)``, so a resumed run, and a run whose length a
time budget re-plans, read the value for the point of the run they are at, with nothing to checkpoint.
How a command uses one: the config field holds the text ("2", "4:1"); ``__post_init__`` parses it, so a
bad value is a one-line ConfigError before any work, and checks its range; the loop asks for the value
at each optimizer step (0-based, the step being taken)::

    temperature = parse_schedule(config.temperature, "--temperature")
    if temperature.bounds()[0] <= 0: problems.append("--temperature must be > 0")
    ...
    while step < total_steps:
        kl = soft_target_kl(student_logits, teacher_logits, temperature.value(step, total_steps))

``str(schedule)`` gives the text back (for the resolved config and the logs); a plain number keeps its
meaning: ``parse_schedule("2").value(step, n) == 2.0`` at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from distilkit.errors import ConfigError

Shape = Literal["constant", "linear", "cosine"]


def _number(value: float) -> str:
    """Shortest text that reads back as the same float: 4.0 → "4", 0.25 → "0.25"."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Schedule:
    """A value that moves from ``start`` to ``end`` over the run, along ``shape``.

    constant: ``start`` throughout (``end == start``); linear: a straight line from ``start`` at step 0
    to ``end`` at ``total_steps``; cosine: half a cosine wave between the same two points (flat at both
    ends, SGDR's annealing curve, Loshchilov & Hutter 2017).
    """

    shape: Shape
    start: float
    end: float

    def value(self, step: int, total_steps: int) -> float:
        """The value at ``step`` (0-based) of a run of ``total_steps``; steps past the end give ``end``."""
        if total_steps <= 0 or step < 0:
            raise ValueError(f"need 0 <= step and total_steps > 0, got step {step} of {total_steps}")
        progress = min(step / total_steps, 1.0)
        if self.shape == "constant":
            return self.start
        if self.shape == "linear":
            return self.start + (self.end - self.start) * progress
        return self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * progress)) / 2.0

    def bounds(self) -> tuple[float, float]:
        """(smallest, largest) value over the run: every shape moves monotonically from start to end."""
        return min(self.start, self.end), max(self.start, self.end)

    def __str__(self) -> str:
        if self.shape == "constant":
            return _number(self.start)
        text = f"{_number(self.start)}:{_number(self.end)}"
        return text if self.shape == "linear" else f"cosine:{text}"


def parse_schedule(text: str | float, flag: str = "schedule") -> Schedule:
    """'4' → constant, '4:1' (or 'linear:4:1') → linear from 4 to 1, 'cosine:4:1' → cosine from 4 to 1.

    A plain number (a float field's old value) is read as a constant. ``flag`` names the setting in the
    one-line ConfigError raised for anything else, e.g. "--temperature: cannot read 'abc' as a schedule".
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(float(text))
    parts = [part.strip() for part in str(text).strip().split(":")]
    shape = {1: "constant", 2: "linear"}.get(len(parts), "")  # "" reads as "cannot read"
    if len(parts) == 3 and parts[0].lower() in ("linear", "cosine"):
        shape = parts.pop(0).lower()
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if not shape or not numbers or not all(math.isfinite(number) for number in numbers):
        raise ConfigError(f"{flag}: cannot read {str(text)!r} as a schedule: use 4, 4:1 or cosine:4:1")
    return Schedule(shape, numbers[0], numbers[-1])
