"""Evaluator overhead: wall time of `evaluate(gold)` against the physical floor, the
sum of the bare test-command times in the same kind of container, for 1 and 2 workers.

    python bench/eval_overhead.py [--tasks FILE|examples] [--repeat N] [--backend docker]

Images are warmed first (built or reused) and not timed. Prints a breakdown of
where the per-instance time goes, and as the last line one JSON object with
`overhead_ratio_1w` (wall / floor, 1 worker) and `speedup_2w` (throughput with 2
workers / with 1).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SETS = ("toolz.jsonl", "more_itertools.jsonl", "click.jsonl")


def _load(spec: str):
    """Tasks from a file, or "examples": every bundled example set (smoke excluded)."""
    from swerve.harness.tasks import load_tasks

    if spec != "examples":
        return load_tasks(spec)
    return [task for name in EXAMPLE_SETS for task in load_tasks(ROOT / "examples" / name)]


def _copies(tasks, repeat: int):
    out = []
    for round_ in range(repeat):
        for task in tasks:
            out.append(task if round_ == 0 else task.model_copy(update={"instance_id": f"{task.instance_id}--r{round_}"}))
    return out


def _floor(tasks, originals, opener) -> float:
    """Bare test time: gold + test patch applied (untimed), then only the test command."""
    from swerve.harness.patches import apply_patch, check_patch
    from swerve.harness.hidden_tests import _files_of

    total = 0.0
    for task in tasks:
        with opener(task, "docker", None, "bench-floor") as env:
            workdir = env.info.workdir
            for index, patch in enumerate((task.patch, task.test_patch)):
                applied = apply_patch(env, patch, workdir=workdir, patch_file=f"/tmp/bench-{index}.diff")
                if not applied.applied:
                    raise SystemExit(f"{task.instance_id}: patch {index} did not apply: {applied.output[-300:]}")
            targets = _files_of([*task.FAIL_TO_PASS, *task.PASS_TO_PASS]) or check_patch(task.test_patch).paths
            command = f"cd {shlex.quote(workdir)} && python -m pytest -q -p no:cacheprovider {' '.join(map(shlex.quote, targets))} > /dev/null 2>&1"
            started = time.monotonic()
            env.exec(command, timeout=1800)
            total += time.monotonic() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="examples", help='a task file, or "examples" (the 36 bundled example tasks)')
    parser.add_argument("--repeat", type=int, default=1, help="evaluate each task this many times per run")
    parser.add_argument("--backend", default="docker")
    args = parser.parse_args()

    from swerve.environments import open_environment
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions

    originals = {t.instance_id: t for t in _load(args.tasks)}

    def opener(task, backend, limits, run_id):
        return open_environment(originals[task.instance_id.split("--")[0]], args.backend, limits, run_id)

    tasks = _copies(list(originals.values()), args.repeat)
    gold = load_predictions("gold", tasks)
    print(f"{len(originals)} tasks x {args.repeat} from {args.tasks}; backend {args.backend}", file=sys.stderr)
    for task in originals.values():  # warm images, untimed
        opener(task, args.backend, None, "bench-warm").close()

    floor = _floor(tasks, originals, opener)
    results = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            started = time.monotonic()
            report = evaluate(tasks, gold, run_id=f"bench-{workers}w", output_dir=out, workers=workers,
                              backend=args.backend, opener=opener)
            wall = time.monotonic() - started
        resolved = report.summary["resolved_instances"]
        parts = {key: statistics.mean(g.durations.get(key, 0.0) for g in report.grades.values())
                 for key in ("env_start_s", "apply_s", "tests_s", "total_s")}
        results[workers] = wall
        print(f"{workers} worker(s): wall {wall:.2f}s, resolved {resolved}/{len(tasks)}; per instance mean "
              + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()), file=sys.stderr)
    print(f"floor (sum of bare test commands): {floor:.2f}s", file=sys.stderr)
    print(json.dumps({
        "instances": len(tasks),
        "floor_s": round(floor, 3),
        "wall_1w_s": round(results[1], 3),
        "wall_2w_s": round(results[2], 3),
        "overhead_ratio_1w": round(results[1] / floor, 3) if floor else None,
        "speedup_2w": round(results[1] / results[2], 3) if results[2] else None,
    }))


if __name__ == "__main__":
    main()
