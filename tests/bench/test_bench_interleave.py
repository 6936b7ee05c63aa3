"""bench/interleave.py: the order sides run in, the shape of what comes back, and the
medians and spreads the benches report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from interleave import ratios, rotated, round_totals, run_interleaved, summarize  # noqa: E402


def test_rotated_wraps_around():
    assert rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert rotated([], 3) == []


def test_each_unit_runs_every_side_back_to_back_and_the_first_side_rotates():
    order: list[tuple[int, str, str]] = []

    def side(name):
        def run(unit):
            order.append((len(order) // 6, unit, name))
            return {"x": 1.0, "y": 2.0}[unit] * (10 if name == "eval" else 1)
        return run

    seconds = run_interleaved(["x", "y"], {"floor": side("floor"), "eval": side("eval"), "two": side("two")}, rounds=2)
    units = [unit for _, unit, _ in order]
    assert units == ["x"] * 3 + ["y"] * 3 + ["x"] * 3 + ["y"] * 3  # never all floors first
    firsts = [order[i][2] for i in range(0, 12, 3)]
    assert firsts == ["floor", "eval", "eval", "two"]
    assert seconds["floor"] == [[1.0, 2.0], [1.0, 2.0]]
    assert seconds["eval"] == [[10.0, 20.0], [10.0, 20.0]]
    assert round_totals(seconds["eval"]) == [30.0, 30.0]
    assert ratios(round_totals(seconds["eval"]), round_totals(seconds["floor"])) == [10.0, 10.0]


def test_run_interleaved_needs_a_round():
    with pytest.raises(ValueError, match="rounds"):
        run_interleaved(["x"], {"a": lambda unit: 0.0}, rounds=0)


def test_summarize_gives_median_and_spread():
    assert summarize([1.2, 1.0, 1.1]) == {"median": 1.1, "min": 1.0, "max": 1.2, "iqr": [1.0, 1.2]}
    wide = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert wide["median"] == 3.0 and wide["max"] == 100.0 and wide["iqr"] == [2.0, 4.0]
    assert summarize([float("nan")])["median"] is None


def test_eval_overhead_deals_the_example_sets_round_robin_into_blocks():
    import eval_overhead

    tasks = eval_overhead._load("examples")
    assert len(tasks) == 36
    assert [t.repo for t in tasks[:3]] == ["pytoolz/toolz", "more-itertools/more-itertools", "pallets/click"]
    blocks = eval_overhead.blocks_of(tasks, 12)
    assert [len(b) for b in blocks] == [12, 12, 12]
    assert all(len({t.repo for t in block}) == 3 for block in blocks)
    assert [len(b) for b in eval_overhead.blocks_of(tasks[:5], 2)] == [2, 2, 1]
    with pytest.raises(ValueError, match="--block"):
        eval_overhead.blocks_of(tasks, 0)
    command = eval_overhead.floor_command(tasks[0], "/testbed")
    assert command.startswith("cd /testbed && python -m pytest -q") and command.endswith("> /dev/null 2>&1")
