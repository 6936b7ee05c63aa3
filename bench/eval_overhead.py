"""Evaluator overhead: wall time of `evaluate(gold)` against the physical floor (the
bare test commands in the same kind of container), and the 2-worker speed-up.

    python bench/eval_overhead.py [--tasks FILE|examples] [--rounds R] [--block B]

The tasks are cut into blocks of B instances (the bundled sets dealt round-robin, so
each block mixes repositories). For each block, three sides run back to back: the
floor (per instance: gold and test patch applied untimed, then only the task's test
command timed), `evaluate` with 1 worker and `evaluate` with 2 workers, exactly as
`swerve eval --predictions gold` runs (default opener, a fresh run folder). The side
that goes first rotates from block to block and round to round; R rounds (default 3).
Load that drifts during the run hits the three sides alike.

Images are warmed first (built or reused) and not timed. Prints per-block lines and a
breakdown of the evaluator's per-instance time, and as the last line one JSON object:
`overhead_ratio_1w` (median over rounds of wall 1 worker / floor) and `speedup_2w`
(median over rounds of wall 1 worker / wall 2 workers), each with `_spread` (min, max,
interquartile range over rounds) and `_rounds` (the per-round values), the same ratios
per block and round (`_blocks`: more samples, a wider view of the noise), and the
load average at start and end. `not_resolved` names any gold evaluation that did not
resolve, with its failure class and reason or error (its time still counts).

The machine's busy CPU (/proc/stat: every process and the kernel, the Docker daemon's
container work included) is read around each timed call: `cpu_s_per_instance` gives it
per instance for the floor (the test command only), 1 worker and 2 workers, and
`speedup_2w_cpu_bound` (median over rounds, with its spread) is the most the 2-worker
side could gain with every core busy: wall 1 worker / (CPU of 2 workers / cores). A
`speedup_2w` near that bound is CPU-bound (only less CPU per instance raises it); one
well below it left cores idle. Work a call leaves behind (the kernel tears a removed
container's network namespace down a moment later) is counted in the next call.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import ratios, round_totals, run_interleaved, summarize  # noqa: E402
from machine import machine_cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SETS = ("toolz.jsonl", "more_itertools.jsonl", "click.jsonl")
DURATION_KEYS = ("env_start_s", "apply_s", "tests_s", "total_s")


def _load(spec: str):
    """Tasks from a file, or "examples": every bundled example set (smoke excluded),
    dealt round-robin so consecutive tasks come from different repositories."""
    from swerve.harness.tasks import load_tasks

    if spec != "examples":
        return load_tasks(spec)
    sets = [load_tasks(ROOT / "examples" / name) for name in EXAMPLE_SETS]
    return [task for row in zip(*sets) for task in row] + [t for s in sets for t in s[min(map(len, sets)):]]


def blocks_of(tasks: list, size: int) -> list[list]:
    """Consecutive blocks of `size` tasks; the last one takes the remainder."""
    if size < 1:
        raise ValueError(f"--block must be at least 1, got {size}")
    return [tasks[start:start + size] for start in range(0, len(tasks), size)]


def floor_command(task, workdir: str) -> str:
    """The bare test command: the targets the evaluator runs, quiet, output discarded."""
    from swerve.harness.hidden_tests import pytest_targets

    targets = " ".join(shlex.quote(t) for t in pytest_targets(task))
    return f"cd {shlex.quote(workdir)} && python -m pytest -q -p no:cacheprovider {targets} > /dev/null 2>&1"


def _floor_one(task, backend: str, cpu: list[float]) -> float:
    """Seconds of the bare test command (container start and patches untimed); the
    machine's busy CPU-seconds during it are appended to `cpu`."""
    from swerve.environments import open_environment
    from swerve.harness.patches import apply_patch

    with open_environment(task, backend, None, "bench-floor") as env:
        workdir = env.info.workdir
        for index, patch in enumerate((task.patch, task.test_patch)):
            applied = apply_patch(env, patch, workdir=workdir, patch_file=f"/tmp/bench-{index}.diff")
            if not applied.applied:
                raise SystemExit(f"{task.instance_id}: patch {index} did not apply: {applied.output[-300:]}")
        started, busy = time.monotonic(), machine_cpu_seconds()
        env.exec(floor_command(task, workdir), timeout=1800)
        cpu.append(machine_cpu_seconds() - busy)
        return time.monotonic() - started


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="examples", help='a task file, or "examples" (the 36 bundled example tasks)')
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (floor, 1 worker, 2 workers) per block")
    parser.add_argument("--block", type=int, default=12, help="instances per block (one evaluate() call per side)")
    parser.add_argument("--backend", default="docker")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")

    from swerve.environments import open_environment
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions

    tasks = _load(args.tasks)
    blocks = blocks_of(tasks, args.block)
    gold = load_predictions("gold", tasks)
    load_start = _load_average()
    print(f"{len(tasks)} tasks from {args.tasks} in {len(blocks)} block(s) of <= {args.block}, {args.rounds} round(s); "
          f"backend {args.backend}; load average {load_start}", file=sys.stderr)
    for task in tasks:  # warm images, untimed
        open_environment(task, args.backend, None, "bench-warm").close()

    durations: dict[str, list[float]] = {key: [] for key in DURATION_KEYS}
    cpu: dict[str, list[float]] = {"floor": [], "eval_1w": [], "eval_2w": []}  # machine CPU-seconds per call
    unresolved: dict[str, str] = {}

    def evaluator(workers: int):
        def side(block) -> float:
            with tempfile.TemporaryDirectory(prefix="swerve-eval-bench-") as out:
                started, busy = time.monotonic(), machine_cpu_seconds()
                report = evaluate(block, gold, run_id=f"bench-{workers}w", output_dir=out, workers=workers,
                                  backend=args.backend)
                wall = time.monotonic() - started
                cpu[f"eval_{workers}w"].append(machine_cpu_seconds() - busy)
            for task in block:
                grade = report.grades.get(task.instance_id)
                if grade is None or not grade.resolved:
                    why = report.errors.get(task.instance_id) if grade is None else \
                        f"{grade.failure_class.value}: {grade.failure_reason}"
                    unresolved[f"{task.instance_id} ({workers}w)"] = why[:300]
                    print(f"NOT resolved: {task.instance_id} with {workers} worker(s): {why[:300]}", file=sys.stderr)
            if workers == 1:
                for grade in report.grades.values():
                    for key in DURATION_KEYS:
                        durations[key].append(grade.durations.get(key, 0.0))
            return wall
        return side

    def floor(block) -> float:
        return sum(_floor_one(task, args.backend, cpu["floor"]) for task in block)

    def say(round_: int, index: int, side: str, seconds: float) -> None:
        print(f"round {round_ + 1} block {index + 1}: {side} {seconds:.2f}s (load {_load_average()})", file=sys.stderr)

    seconds = run_interleaved(blocks, {"floor": floor, "eval_1w": evaluator(1), "eval_2w": evaluator(2)},
                              args.rounds, on_done=say)
    floor_rounds = round_totals(seconds["floor"])
    one_rounds = round_totals(seconds["eval_1w"])
    two_rounds = round_totals(seconds["eval_2w"])
    overhead = ratios(one_rounds, floor_rounds)
    speedup = ratios(one_rounds, two_rounds)
    flat = {side: [s for per_round in values for s in per_round] for side, values in seconds.items()}
    overhead_blocks = ratios(flat["eval_1w"], flat["floor"])
    speedup_blocks = ratios(flat["eval_1w"], flat["eval_2w"])
    means = {key: round(statistics.mean(values), 3) for key, values in durations.items() if values}
    print(f"evaluator per instance (1 worker, mean over rounds): {means}; floor per instance "
          f"{statistics.median(floor_rounds) / len(tasks):.3f}s", file=sys.stderr)
    overhead_summary, speedup_summary = summarize(overhead), summarize(speedup)
    cpu_per_instance = {side: round(sum(values) / (args.rounds * len(tasks)), 3) for side, values in cpu.items()}
    # With every core busy, 2 workers take at least their CPU-seconds / cores: the best
    # speed-up the CPU they spent allows (per round, against that round's 1-worker wall).
    cores = os.cpu_count() or 1
    per_round = len(blocks)  # cpu[side] is in call order: round by round, block by block
    two_cpu_rounds = [sum(cpu["eval_2w"][r * per_round:(r + 1) * per_round]) for r in range(args.rounds)]
    bound = summarize(ratios(one_rounds, [c / cores for c in two_cpu_rounds]))
    print(json.dumps({
        "instances": len(tasks),
        "rounds": args.rounds,
        "block": args.block,
        "floor_s": round(statistics.median(floor_rounds), 3),
        "wall_1w_s": round(statistics.median(one_rounds), 3),
        "wall_2w_s": round(statistics.median(two_rounds), 3),
        "overhead_ratio_1w": overhead_summary["median"],
        "overhead_ratio_1w_spread": {k: overhead_summary[k] for k in ("min", "max", "iqr")},
        "overhead_ratio_1w_rounds": [round(r, 3) for r in overhead],
        "overhead_ratio_1w_blocks": summarize(overhead_blocks),
        "speedup_2w": speedup_summary["median"],
        "speedup_2w_spread": {k: speedup_summary[k] for k in ("min", "max", "iqr")},
        "speedup_2w_rounds": [round(r, 3) for r in speedup],
        "speedup_2w_blocks": summarize(speedup_blocks),
        "per_instance_1w_s": means,
        "cpu_s_per_instance": cpu_per_instance,
        "speedup_2w_cpu_bound": bound["median"],
        "speedup_2w_cpu_bound_spread": {k: bound[k] for k in ("min", "max", "iqr")},
        "load_average": [load_start, _load_average()],
        "not_resolved": unresolved,
    }))


if __name__ == "__main__":
    main()
