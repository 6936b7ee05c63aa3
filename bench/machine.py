"""The whole machine's busy CPU time, for benches that must tell a CPU-bound figure
from a clock-bound one (every process and the kernel count: the Docker daemon,
containerd, runc and the namespace teardown as much as the code under test)."""

from __future__ import annotations

import os
import time


def machine_cpu_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since boot (all but idle and iowait
    in /proc/stat's first line)."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def background_cpu_per_s(seconds: float = 2.0) -> float:
    """The machine's busy CPU-seconds per second while this process sleeps `seconds`
    (what a bench subtracts as the idle background)."""
    start = machine_cpu_seconds()
    time.sleep(seconds)
    return (machine_cpu_seconds() - start) / seconds
