"""Mint throughput: candidate bugs tested per minute in one warm environment that is
reset between candidates, against a fresh container per candidate, in the same run
on the same candidates.

Each candidate is tested the same way in both modes (write the mutated file, run
the whole suite with JUnit results); the warm mode's time includes opening its one
environment. Image builds and the baseline run happen before timing starts.

    python bench/mint.py --source pypi:toolz==0.12.1 --candidates 6

The last line is a JSON object with warm_per_min, fresh_per_min and speedup.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from swerve.environments import Limits, open_environment, pick_backend
from swerve.environments.sources import prepare_repo
from swerve.harness.mint import baseline_passing, run_suite, source_task
from swerve.harness.mutations import generate_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="pypi:toolz==0.12.1", help="pypi:NAME==VERSION, git URL or path")
    parser.add_argument("--candidates", type=int, default=6, help="candidates tested in each mode")
    parser.add_argument("--seed", type=int, default=0, help="candidate order")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for one suite run")
    parser.add_argument("--backend", default="auto", help="docker, local or auto")
    args = parser.parse_args()

    backend = pick_backend(args.backend)
    task = source_task(args.source)
    repo = prepare_repo(task)
    limits = Limits(exec_timeout_s=args.timeout + 60)
    candidates = list(itertools.islice(generate_candidates(repo.path, seed=args.seed), args.candidates))
    with open_environment(task, backend, limits, run_id="bench-mint") as env:
        passing, total = baseline_passing(env, task, args.timeout, args.source)
    print(f"source {args.source}: {total} tests, {len(passing)} passing; backend {backend}; "
          f"{len(candidates)} candidates per mode")

    def failing(run) -> list[str]:
        return sorted(t for t in passing if not (run.statuses.get(t) and run.statuses[t].counts_as_pass))

    warm_results = {}
    started = time.monotonic()
    with open_environment(task, backend, limits, run_id="bench-mint") as env:
        for candidate in candidates:
            env.write_file(candidate.file, candidate.mutated_source)
            warm_results[candidate.key] = failing(run_suite(env, task, args.timeout))
            env.reset()
    warm_s = time.monotonic() - started
    print(f"warm  (one environment, reset between): {warm_s:7.1f}s for {len(candidates)} candidates")

    fresh_results = {}
    started = time.monotonic()
    for candidate in candidates:
        with open_environment(task, backend, limits, run_id="bench-mint") as env:
            env.write_file(candidate.file, candidate.mutated_source)
            fresh_results[candidate.key] = failing(run_suite(env, task, args.timeout))
    fresh_s = time.monotonic() - started
    print(f"fresh (new environment per candidate):  {fresh_s:7.1f}s for {len(candidates)} candidates")

    agree = warm_results == fresh_results
    print(f"same failing tests in both modes: {agree}")
    warm_per_min = len(candidates) / (warm_s / 60)
    fresh_per_min = len(candidates) / (fresh_s / 60)
    print(json.dumps({
        "source": args.source,
        "backend": backend,
        "candidates": len(candidates),
        "warm_s": round(warm_s, 2),
        "fresh_s": round(fresh_s, 2),
        "warm_per_min": round(warm_per_min, 2),
        "fresh_per_min": round(fresh_per_min, 2),
        "speedup": round(warm_per_min / fresh_per_min, 2) if fresh_per_min else None,
        "results_agree": agree,
    }))


if __name__ == "__main__":
    main()
