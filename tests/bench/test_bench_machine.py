"""bench/machine.py: the machine's busy CPU counts at least this process's own CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from machine import background_cpu_per_s, machine_cpu_seconds  # noqa: E402


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def test_the_machine_busy_time_includes_this_process_spinning():
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    machine_before, own_before = machine_cpu_seconds(), _own_cpu_s()
    while _own_cpu_s() - own_before < 0.3:
        sum(range(10_000))
    spent = _own_cpu_s() - own_before
    assert machine_cpu_seconds() - machine_before >= spent - 4 * tick


def test_the_background_rate_is_a_rate_of_cores():
    rate = background_cpu_per_s(0.2)
    assert 0.0 <= rate <= (os.cpu_count() or 1) + 0.5
