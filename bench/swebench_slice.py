"""The genuine SWE-bench slice end to end: image builds (cold and warm, per instance),
gold / no-op / shipped-model verdicts against the official ones, and gold evaluation
wall time against the bare test-command floor in the same run.

    python bench/swebench_slice.py [--slice DIR] [--no-cold] [--keep-cold-images] [--repeat R]

Cold: every tier above the Debian bootstrap is built anew for each instance (a fresh
$SWERVE_HOME for the prepared repository and the wheelhouse, $SWERVE_IMAGE_SALT for the
images); the suite's base is built by the first instance of each suite; the Debian
bootstrap (one per suite, shared by everything) is timed apart when it is missing.
pip's own download cache is not cleared. Warm: the same call again. The cold images are
removed at the end (unless --keep-cold-images); the evaluations use the regular ones.

The floor is, per instance, only the row's test command (eval_commands, test_cmd and
directives) run in its instance image with the gold and test patches applied. Floor and
gold evaluation run back to back per instance, the first side rotating (bench/interleave.py),
R rounds (default 3), so load that drifts during the run hits both alike; each side's
per-instance median is summed.
Prints per-instance lines, then as the last line one JSON object with gold_resolved,
noop_resolved, official_agreement, build_cold_s, build_warm_s (per-instance means; the
per-instance values beside them), overhead_ratio (sum of gold-evaluation medians / sum of
floor medians), overhead_ratio_rounds (the same ratio for each round) and
overhead_ratio_spread (min, max, interquartile range of those).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import run_interleaved, summarize  # noqa: E402

DEFAULT_SLICE = ROOT.parent / "shared" / "swebench-slice"
README_NAMES = ("README.md", "README.rst", "README")


def _rows(slice_dir: Path, folder: Path) -> Path:
    rows = [json.loads(line) for line in (slice_dir / "rows.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:
        row["repo_source"] = (slice_dir / "repos" / f"{row['repo'].replace('/', '__')}.git").resolve().as_uri()
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _noop_patch(task) -> str:
    """A blank line added at the top of the README: the tests still run."""
    from swerve.harness.swebench.requirements import local_git_dir

    repo = local_git_dir(task.repo_source)
    for name in README_NAMES:
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{task.base_commit}:{name}"],
                               capture_output=True, text=True)
        if shown.returncode == 0:
            first = shown.stdout.splitlines()[0]
            return f"diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n@@ -1 +1,2 @@\n+\n {first}\n"
    raise SystemExit(f"{task.instance_id}: no README at the base commit")


def _time_builds(tasks, keep: bool) -> tuple[dict, dict, float | None]:
    """(cold s, warm s) per instance and the bootstrap time when one was needed."""
    from swerve.environments import images

    client = images.docker_client()
    bootstrap = None
    for suite in sorted({images.suite_for_python(t.python, t.instance_id) for t in tasks if t.python}):
        started = time.monotonic()
        _, origin = images._ensure_rootfs(client, suite)
        spent = time.monotonic() - started
        if spent > 5:
            bootstrap = (bootstrap or 0.0) + spent
            print(f"debootstrap {suite}: {spent:.1f}s", file=sys.stderr)
    saved = {key: os.environ.get(key) for key in ("SWERVE_HOME", images.SALT_ENV)}
    cold, warm, built = {}, {}, []
    with tempfile.TemporaryDirectory(prefix="swerve-cold-home-") as home:
        os.environ["SWERVE_HOME"] = home
        os.environ[images.SALT_ENV] = uuid.uuid4().hex
        try:
            for task in tasks:
                started = time.monotonic()
                ref = images.ensure_instance_image(task, client=client)
                cold[task.instance_id] = round(time.monotonic() - started, 2)
                started = time.monotonic()
                again = images.ensure_instance_image(task, client=client)
                warm[task.instance_id] = round(time.monotonic() - started, 3)
                assert again.cached and again.id == ref.id
                built += [ref.tag, images.ensure_env_image(task, client=client)]
                print(f"{task.instance_id}: Python {task.python}: cold {cold[task.instance_id]:.1f}s, "
                      f"warm {warm[task.instance_id]:.3f}s", file=sys.stderr)
            built += sorted({images.ensure_base_image(client, suite=images.suite_for_python(t.python, t.instance_id))
                             for t in tasks})
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if not keep:
                for tag in dict.fromkeys(built):  # rows of one repository and version share their env
                    try:
                        client.images.remove(tag)
                    except Exception as exc:
                        print(f"kept {tag}: {exc}", file=sys.stderr)
    return cold, warm, bootstrap


def _floor_one(task) -> float:
    """Seconds of the bare test command for one instance (patches applied untimed)."""
    from swerve.environments import open_environment
    from swerve.harness.patches import apply_patch

    with open_environment(task, "docker", None, "bench-floor") as env:
        workdir = env.info.workdir
        for index, patch in enumerate((task.patch, task.test_patch)):
            applied = apply_patch(env, patch, workdir=workdir, patch_file=f"/tmp/bench-{index}.diff")
            if not applied.applied:
                raise SystemExit(f"{task.instance_id}: patch {index} did not apply: {applied.output[-300:]}")
        lines = [f"cd {shlex.quote(workdir)}", *task.eval_commands,
                 f"{task.test_cmd} {' '.join(shlex.quote(d) for d in task.test_directives)} > /dev/null 2>&1"]
        started = time.monotonic()
        env.exec("\n".join(lines), timeout=1800)
        return time.monotonic() - started


def _interleaved_gold(tasks, folder: Path, repeat: int):
    """Per instance, the bare floor and the gold evaluation back to back (the first side
    rotating), `repeat` rounds (bench/interleave.py): load that drifts during the run hits
    both sides alike. Returns (first round's gold grades, {id: [floor_s...]}, {id: [eval_s...]})."""
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions

    grades = {}
    runs = {"n": 0}

    def gold(task) -> float:
        runs["n"] += 1
        started = time.monotonic()
        report = evaluate([task], load_predictions("gold", [task]), run_id=f"gold-{runs['n']}-{task.instance_id}",
                          output_dir=folder, backend="docker")
        spent = time.monotonic() - started
        grades.setdefault(task.instance_id, report.grades.get(task.instance_id))
        return spent

    seconds = run_interleaved(tasks, {"floor": _floor_one, "gold": gold}, repeat)
    per_instance = {side: {t.instance_id: [values[r][i] for r in range(repeat)] for i, t in enumerate(tasks)}
                    for side, values in seconds.items()}
    return {k: v for k, v in grades.items() if v is not None}, per_instance["floor"], per_instance["gold"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", type=Path, default=Path(os.environ.get("SWERVE_SWEBENCH_SLICE", DEFAULT_SLICE)),
                        help="the slice folder (rows.jsonl, repos/, devin_predictions.jsonl)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build timings")
    parser.add_argument("--keep-cold-images", action="store_true", help="keep the images the cold builds made")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of (floor, gold evaluation) per instance, interleaved; medians are reported")
    args = parser.parse_args()

    from swerve.environments.images import ensure_instance_image
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions, load_tasks
    from swerve.schema import Prediction

    with tempfile.TemporaryDirectory(prefix="swerve-slice-bench-") as scratch:
        folder = Path(scratch)
        tasks = load_tasks(str(_rows(args.slice, folder)))
        official = {}
        model = {}
        for line in (args.slice / "devin_predictions.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                official[row["instance_id"]] = bool(row["official_resolved"])
                model[row["instance_id"]] = Prediction.model_validate(row)
        cold, warm, bootstrap = ({}, {}, None) if args.no_cold else _time_builds(tasks, args.keep_cold_images)
        for task in tasks:  # the regular images, untimed
            ensure_instance_image(task)
        gold_grades, floors, evals = _interleaved_gold(tasks, folder, max(1, args.repeat))
        floor = {iid: statistics.median(values) for iid, values in floors.items()}
        gold_time = {iid: statistics.median(values) for iid, values in evals.items()}
        noop = evaluate(tasks, {t.instance_id: Prediction(instance_id=t.instance_id, model_name_or_path="noop",
                                                          model_patch=_noop_patch(t)) for t in tasks},
                        run_id="noop", output_dir=folder, backend="docker")
        verdicts = evaluate(tasks, model, run_id="model", output_dir=folder, backend="docker")
    agree = {iid: bool(verdicts.grades[iid].resolved) == official[iid] for iid in official if iid in verdicts.grades}
    for task in tasks:
        iid = task.instance_id
        grade = gold_grades.get(iid)
        print(f"{iid}: python {task.python}; gold {'resolved' if grade and grade.resolved else 'NOT resolved'} "
              f"in {gold_time[iid]:.1f}s median (floor {floor[iid]:.1f}s median); "
              f"noop {'resolved' if noop.grades.get(iid) and noop.grades[iid].resolved else 'unresolved'}; "
              f"model {'agrees' if agree.get(iid) else 'DIFFERS'} (official {official.get(iid)})", file=sys.stderr)
    floor_total = sum(floor.values())
    gold_total = sum(gold_time.values())
    rounds = len(next(iter(floors.values()), []))
    round_ratios = [sum(evals[i][r] for i in evals) / sum(floors[i][r] for i in floors) for r in range(rounds)]
    mean = lambda values: round(sum(values) / len(values), 3) if values else None  # noqa: E731
    print(json.dumps({
        "instances": len(tasks),
        "python": {t.instance_id: t.python for t in tasks},
        "gold_resolved": sum(1 for g in gold_grades.values() if g.resolved),
        "noop_resolved": noop.summary["resolved_instances"],
        "official_agreement": sum(agree.values()),
        "official_disagreements": sorted(iid for iid, same in agree.items() if not same),
        "build_cold_s": mean(list(cold.values())),
        "build_warm_s": mean(list(warm.values())),
        "build_warm_max_s": max(warm.values()) if warm else None,
        "build_cold_per_instance_s": cold,
        "build_warm_per_instance_s": warm,
        "debootstrap_s": round(bootstrap, 1) if bootstrap else None,
        "gold_s": round(gold_total, 2),
        "floor_s": round(floor_total, 2),
        "overhead_ratio": round(gold_total / floor_total, 3) if floor_total else None,
        "overhead_ratio_rounds": [round(r, 3) for r in round_ratios],
        "overhead_ratio_spread": {k: v for k, v in summarize(round_ratios).items() if k != "median"},
        "repeat": rounds,
        "errors": {**noop.errors, **verdicts.errors},
    }))


if __name__ == "__main__":
    main()
