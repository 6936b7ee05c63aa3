"""Many attempts per task: pass@k, and how much choosing among the attempts recovers.

Runs the stochastic oracle (`oracle-stochastic:p=P`: the gold fix with probability p
per attempt, otherwise a near miss or a partial fix; with probability 0.7 it also leaves
a reproduction test written from the issue's examples in its patch) N times per task in
Docker, grades every attempt, then picks one patch per task with `swerve select`'s
`tests` (visible suite + every attempt's reproduction tests on every candidate),
`consensus` and `tests,consensus` strategies, and reads their resolved rates off the
graded attempts they picked.

Prints the figures, then one JSON line with pass_at_1 (mean over attempts),
pass_at_n, best_of_n_tests, best_of_n_consensus, best_of_n_tests_consensus, their
margins over pass@1 (tests_margin, consensus_margin, tests_consensus_margin) and
whether each clears MIN_MARGIN (margins_met), pass_at_k_in_ci (for each k whether the
exact expectation 1-(1-p)^k lies in the bootstrap interval of the measured pass@k),
seconds_per_attempt (episode and grading wall time per attempt),
selection_cost_share (wall time of the `tests` selection over that of all attempts),
and simulated_bundled: pass@1 and the consensus pick over every bundled example task
without Docker (the patches the policy makes, graded by its own draw).

    python bench/attempts.py [--tasks examples/smoke.jsonl[,examples/toolz.jsonl...]] [--attempts 8] [--p 0.3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from swerve.agents.attempts import run_attempts
from swerve.agents.policies import make_policy
from swerve.agents.selection import select_run
from swerve.harness.tasks import load_tasks
from swerve.reports.attempts import read_outcomes, score_attempts, selection_rates

MIN_MARGIN = 0.1  # what each selection strategy must add to pass@1 (absolute resolved rate)


def load_task_files(spec: str) -> list:
    """Tasks of one or more comma-separated files, each instance once."""
    tasks = {}
    for path in filter(None, (part.strip() for part in spec.split(","))):
        for task in load_tasks(path):
            tasks.setdefault(task.instance_id, task)
    return list(tasks.values())


def simulated_consensus(p: float, attempts: int, seed: int) -> dict[str, float]:
    """Without Docker, on every bundled example task (examples/*.jsonl): the patch each
    attempt of the stochastic oracle makes, graded by its own draw; pass@1 against the
    `consensus` pick. A larger sample than the Docker run's few tasks."""
    import glob

    from swerve.agents.policies.stochastic import StochasticOraclePolicy, solves
    from swerve.agents.selection import Candidate, select_for_task, task_view

    tasks = {t.instance_id: t for path in sorted(glob.glob("examples/*.jsonl")) for t in load_tasks(path)}
    pass_at_1 = picked = 0.0
    for instance_id, task in tasks.items():
        seeds = [seed + k for k in range(attempts)]
        candidates = []
        for attempt, attempt_seed in enumerate(seeds, start=1):
            policy = StochasticOraclePolicy(task, p, attempt_seed)
            patch = policy.planned_patch
            candidates.append(Candidate(instance_id, attempt, patch, "submitted"))
        outcomes = [solves(task, p, s) for s in seeds]
        pass_at_1 += sum(outcomes) / attempts
        picked += outcomes[select_for_task(task_view(task), candidates, ["consensus"]).attempt - 1]
    return {"tasks": len(tasks), "pass_at_1": pass_at_1 / len(tasks), "consensus": picked / len(tasks)}


def wrong_attempt_kinds(run: Path) -> dict[str, int]:
    """How the `tests` selection saw each unresolved attempt: it broke a visible test (or
    did not apply), it passed those but failed a reproduction check another candidate of
    its task passes, or nothing told it apart from the best candidate (undetected)."""
    from swerve.reports.attempts import read_outcomes_by_attempt

    outcomes = read_outcomes_by_attempt(run)
    kinds = {"break_visible": 0, "fail_reproduction": 0, "undetected": 0}
    for line in (run / "selections" / "tests.jsonl").read_text().splitlines():
        row = json.loads(line)
        scores = {int(a): sc for a, sc in row["candidate_scores"].items()}
        best_repro = max(sc.get("repro", 0) for sc in scores.values())
        for attempt, sc in scores.items():
            if outcomes.get(row["instance_id"], {}).get(attempt):
                continue
            if sc["tests"] < 0:
                kinds["break_visible"] += 1
            elif sc.get("repro", 0) < best_repro:
                kinds["fail_reproduction"] += 1
            else:
                kinds["undetected"] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="examples/toolz.jsonl,examples/more_itertools.jsonl",
                        help="task files, comma-separated (default: the 24 toolz and more-itertools examples; examples/smoke.jsonl for a quick look)")
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--p", type=float, default=0.3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="attempt K uses seed SEED + K - 1")
    parser.add_argument("--backend", default="docker")
    parser.add_argument("--out", default=None, help="keep the run here (default: a temporary folder, removed)")
    args = parser.parse_args()

    tasks = load_task_files(args.tasks)
    spec = f"oracle-stochastic:p={args.p}"
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="swerve-bench-attempts-"))
    run = root / "attempts-run" if not args.out else root
    if run.exists() and any(run.iterdir()):
        raise SystemExit(f"{run} is not empty; give a fresh --out (the timings need fresh attempts)")

    def factory_for_seed(seed: int):
        return lambda task: make_policy(spec, task=task, seed=seed)

    common = dict(attempts=args.attempts, base_seed=args.seed, out_dir=run, workers=args.workers, backend=args.backend,
                  progress=False, policy_spec=spec)
    try:
        started = time.monotonic()
        run_attempts(tasks, factory_for_seed, evaluate=False, **common)
        episodes_s = time.monotonic() - started
        started = time.monotonic()
        graded = run_attempts(tasks, factory_for_seed, evaluate=True, **common)
        grading_s = time.monotonic() - started
        if graded.grading_errors:
            raise SystemExit(f"grading failed for {sorted(graded.grading_errors)}; rerun")
        selection_s: dict[str, float] = {}
        for strategy in ("tests", "consensus", "tests,consensus"):
            started = time.monotonic()
            select_run(run, tasks, strategy, backend=args.backend, workers=args.workers)
            selection_s[strategy] = time.monotonic() - started

        scores = score_attempts(read_outcomes(run), samples=2000, seed=0)
        simulated = simulated_consensus(args.p, args.attempts, args.seed)
        rates = selection_rates(run)
        units = len(tasks) * args.attempts
        attempt_s = episodes_s + grading_s
        print(f"{len(tasks)} tasks x {args.attempts} attempts of {spec} (seeds {args.seed}..{args.seed + args.attempts - 1}, "
              f"{args.backend}, {args.workers} workers)")
        print(f"episodes {episodes_s:.1f} s, grading {grading_s:.1f} s: {attempt_s / units:.2f} s per attempt")
        in_ci = {}
        for k, value in scores.pass_at.items():
            low, high = scores.pass_at_ci[k]
            expected = 1 - (1 - args.p) ** k
            in_ci[k] = low <= expected <= high
            print(f"pass@{k}: {value:.3f}  [{low:.3f}, {high:.3f}]  exact expectation 1-(1-p)^k = "
                  f"{expected:.3f} ({'inside' if in_ci[k] else 'OUTSIDE'} the interval)")
        print("resolved attempts per task:", scores.solves)
        for strategy, seconds in selection_s.items():
            name = strategy.replace(",", "+")
            print(f"select {strategy}: resolved {rates.get(name, 0.0):.3f} in {seconds:.1f} s")
        print(f"without Docker, all {simulated['tasks']} bundled example tasks: pass@1 {simulated['pass_at_1']:.3f}, "
              f"consensus {simulated['consensus']:.3f}")
        wrong = wrong_attempt_kinds(run)
        print("unresolved attempts as the tests selection saw them:", wrong)
        margins = {name: rates.get(strategy, 0.0) - scores.pass_at[1]
                   for name, strategy in (("tests", "tests"), ("consensus", "consensus"),
                                          ("tests_consensus", "tests+consensus"))}
        for name, margin in margins.items():
            print(f"{name} - pass@1 = {margin:+.3f} (needs >= +{MIN_MARGIN}: {'met' if margin >= MIN_MARGIN else 'NOT met'})")
        print(json.dumps({
            "tasks": len(tasks),
            "attempts": args.attempts,
            "p": args.p,
            "seed": args.seed,
            "pass_at_1": round(scores.pass_at[1], 4),
            "pass_at_1_ci": [round(v, 4) for v in scores.pass_at_ci[1]],
            "pass_at_n": round(scores.pass_at[args.attempts], 4),
            "expected_pass_at_1": args.p,
            "expected_pass_at_n": round(1 - (1 - args.p) ** args.attempts, 4),
            "best_of_n_tests": round(rates.get("tests", 0.0), 4),
            "best_of_n_consensus": round(rates.get("consensus", 0.0), 4),
            "best_of_n_tests_consensus": round(rates.get("tests+consensus", 0.0), 4),
            "tests_margin": round(margins["tests"], 4),
            "consensus_margin": round(margins["consensus"], 4),
            "tests_consensus_margin": round(margins["tests_consensus"], 4),
            "min_margin": MIN_MARGIN,
            "margins_met": {name: margin >= MIN_MARGIN for name, margin in margins.items()},
            "pass_at_k_in_ci": {str(k): inside for k, inside in in_ci.items()},
            "wrong_attempts": wrong,
            "seconds_per_attempt": round(attempt_s / units, 3),
            "selection_cost_share": round(selection_s["tests"] / attempt_s, 4),
            "selection_seconds": {k: round(v, 2) for k, v in selection_s.items()},
            "simulated_bundled": {k: round(v, 4) for k, v in simulated.items()},
        }))
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
