"""Counts of fuzz cases tried per entry point, printed in pytest's terminal summary (see conftest.py)."""

from collections import Counter

CASES: Counter = Counter()
