"""Interleaved, repeated timing for benches that compare sides (a floor and the code
under test) on a shared, drifting machine.

Each round runs every side on every unit back to back (the side that goes first
rotates from unit to unit and round to round, so a side is not always the one that
runs on a cold cache or right after a slow neighbour). Load that drifts during the
run then hits all sides alike, and the per-round figures show how far the result
moves: `summarize` gives the median and the spread (min, max, interquartile range).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

Unit = TypeVar("Unit")


def rotated(items: Sequence, start: int) -> list:
    """`items` starting at position `start` (modulo its length), wrapping around."""
    if not items:
        return []
    start %= len(items)
    return [*items[start:], *items[:start]]


def timed(run: Callable[[], object]) -> float:
    """Seconds `run()` took."""
    started = time.monotonic()
    run()
    return time.monotonic() - started


def run_interleaved(units: Sequence[Unit], sides: Mapping[str, Callable[[Unit], float]], rounds: int,
                    on_done: Callable[[int, int, str, float], None] | None = None) -> dict[str, list[list[float]]]:
    """Run each side on each unit, `rounds` times: seconds[side][round][unit index].

    A side is a function of one unit that returns the seconds it measured (so it can
    leave untimed preparation out). `on_done(round, unit index, side, seconds)` is
    called after each measurement (progress lines)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    names = list(sides)
    seconds: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names:
            seconds[name].append([0.0] * len(units))
        for index, unit in enumerate(units):
            for name in rotated(names, round_ + index):
                spent = sides[name](unit)
                seconds[name][round_][index] = spent
                if on_done is not None:
                    on_done(round_, index, name, spent)
    return seconds


def round_totals(seconds: list[list[float]]) -> list[float]:
    """Per round, the sum over units."""
    return [sum(per_unit) for per_unit in seconds]


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Element-wise numerator / denominator (None where the denominator is 0)."""
    return [n / d if d else float("nan") for n, d in zip(numerator, denominator, strict=True)]


def summarize(values: Sequence[float], digits: int = 3) -> dict:
    """Median and spread of `values`: {"median", "min", "max", "iqr"} (iqr: the
    25th-75th percentile range; with fewer than 4 values the min-max range)."""
    finite = [v for v in values if v == v]
    if not finite:
        return {"median": None, "min": None, "max": None, "iqr": None}
    if len(finite) >= 4:
        quartiles = statistics.quantiles(finite, n=4, method="inclusive")
        iqr = [quartiles[0], quartiles[2]]
    else:
        iqr = [min(finite), max(finite)]
    return {
        "median": round(statistics.median(finite), digits),
        "min": round(min(finite), digits),
        "max": round(max(finite), digits),
        "iqr": [round(v, digits) for v in iqr],
    }
