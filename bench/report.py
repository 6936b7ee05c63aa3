"""Does `swerve report` stay linear? Times the report machinery (scan, tables, HTML
report with one trajectory page per trajectory) over a synthetic run of 10,000
trajectories and over one 10x smaller, in the same process.

Times are CPU seconds of this process (wall-clock times, printed too, swing with
whatever else shares the machine). Prints the figures, then one JSON line:
scaling_ratio = time(10,000) / time(1,000) (linear is about 10; fixed costs such
as drawing the plots pull it below 10, a quadratic step would push it towards 100).
last_to_first_tenth compares the CPU time the scan spent on the last tenth of the
large run's trajectories with the first tenth: about 1 when each trajectory costs
the same however many came before.

    python bench/report.py [--large 10000] [--small 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from swerve.reports.build import build_report
from swerve.reports.scan import scan_run
from swerve.reports.synthetic import synthetic_tasks, write_synthetic_run, write_tasks
from swerve.reports.taskinfo import load_task_infos


def _make_run(root: Path, count: int) -> tuple[Path, Path]:
    tasks = synthetic_tasks(count, seed=count)
    tasks_file = write_tasks(root / f"tasks-{count}.jsonl", tasks)
    run = write_synthetic_run(root / f"run-{count}", tasks, seed=count, resolve_rate=0.4)
    return tasks_file, run


def _time_once(root: Path, count: int, tasks: dict, run: Path) -> dict[str, float]:
    stamps: list[float] = []
    started, cpu = time.perf_counter(), time.process_time()
    scan = scan_run(run, tasks, on_trajectory=lambda *_: stamps.append(time.process_time()))
    scan_s, scan_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    tenth = max(len(stamps) // 10, 2)
    first_tenth_s = stamps[tenth - 1] - stamps[0]
    last_tenth_s = stamps[-1] - stamps[-tenth]
    started, cpu = time.perf_counter(), time.process_time()
    report = build_report([run], tasks=tasks, html=root / f"html-{count}" / "report.html")
    full_s, full_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    rows = len(report.scans[0].rows)
    assert rows == count == len(scan.rows), (rows, count)
    assert report.problem_count == 0, [str(p) for p in report.scans[0].problems[:5]]
    return {
        "scan_s": scan_cpu_s,
        "full_s": full_cpu_s,
        "scan_wall_s": scan_s,
        "full_wall_s": full_s,
        "tenth_ratio": last_tenth_s / first_tenth_s,
        "html_mb": report.html_path.stat().st_size / 1e6,
    }


def _time_report(root: Path, count: int, tasks_file: Path, run: Path, repeat: int) -> dict[str, float]:
    """Mean over `repeat` measurements (the small run is repeated so that its time is
    not one short sample taken while the machine happened to be quiet or busy)."""
    tasks = load_task_infos(tasks_file)
    samples = [_time_once(root, count, tasks, run) for _ in range(repeat)]
    mean = {key: sum(sample[key] for sample in samples) / repeat for key in samples[0]}
    print(
        f"{count:>6} trajectories (mean of {repeat}): scan {mean['scan_s']:7.2f}s CPU ({mean['scan_wall_s']:.2f}s wall)  "
        f"full report {mean['full_s']:7.2f}s CPU ({mean['full_wall_s']:.2f}s wall)  "
        f"{count / mean['full_s']:,.0f} trajectories per CPU second, report.html {mean['html_mb']:.1f} MB",
        flush=True,
    )
    return mean


def _scratch_parent() -> str | None:
    """tmpfs when it has room, so the figures measure the report rather than the disk."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * 1024**3:
        return str(shm)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5, help="measurements of the small run to average")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swerve-bench-report-", dir=_scratch_parent()) as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        runs = {count: _make_run(root, count) for count in (args.small, args.large)}
        os.sync()
        print(f"synthetic runs written to {root} in {time.perf_counter() - started:.1f}s", flush=True)
        small = _time_report(root, args.small, *runs[args.small], repeat=args.repeat)
        large = _time_report(root, args.large, *runs[args.large], repeat=1)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {
            "benchmark": "report",
            "small": args.small,
            "large": args.large,
            "small_cpu_s": round(small["full_s"], 3),
            "large_cpu_s": round(large["full_s"], 3),
            "scaling_ratio": round(large["full_s"] / small["full_s"], 2),
            "scan_scaling_ratio": round(large["scan_s"] / small["scan_s"], 2),
            "small_wall_s": round(small["full_wall_s"], 3),
            "large_wall_s": round(large["full_wall_s"], 3),
            "wall_scaling_ratio": round(large["full_wall_s"] / small["full_wall_s"], 2),
            "size_ratio": args.large / args.small,
            "last_to_first_tenth": round(large["tenth_ratio"], 2),
            "peak_rss_mb": round(peak_mb, 1),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
