"""Mint throughput: candidate bugs decided per minute, three ways in the same run on the
same candidates.

- warm: today's loop before test selection; one warm environment, `reset()` between
  candidates, the whole suite once per candidate (no verdict, no second run);
- full: the whole-suite decision (`test_candidate` without a call map: a kept
  candidate's suite runs twice), one warm environment;
- selected: the call map made once (its time counted), then each candidate screened
  on the tests that start its function and confirmed by the whole suite, in
  `--workers` warm environments in parallel (opening them counted).

`decisions_agree` is true when the selected path keeps and rejects exactly the
candidates the full path does, with the same FAIL_TO_PASS tests for the kept ones.
`--fresh` adds today's other baseline: a new container per candidate.

    python bench/mint.py --source pypi:toolz==0.12.1 --candidates 24

The last line is a JSON object; `speedup_selected` is selected against warm per minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time

from swerve.environments import Limits, open_environment, pick_backend
from swerve.environments.sources import prepare_repo
from swerve.harness.call_map import map_calls
from swerve.harness.candidate_verdicts import baseline_passing, run_suite, test_candidate
from swerve.harness.mint import source_task
from swerve.harness.mutations import generate_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="pypi:toolz==0.12.1", help="pypi:NAME==VERSION, git URL or path")
    parser.add_argument("--candidates", type=int, default=24, help="candidates decided in each mode")
    parser.add_argument("--seed", type=int, default=0, help="candidate order")
    parser.add_argument("--workers", type=int, default=2, help="environments of the selected path")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for one suite run")
    parser.add_argument("--backend", default="auto", help="docker, local or auto")
    parser.add_argument("--fresh", action="store_true", help="also time a fresh container per candidate")
    args = parser.parse_args()

    backend = pick_backend(args.backend)
    task = source_task(args.source)
    repo = prepare_repo(task)
    limits = Limits(exec_timeout_s=args.timeout + 60)
    candidates = list(itertools.islice(generate_candidates(repo.path, seed=args.seed), args.candidates))
    with open_environment(task, backend, limits, run_id="bench-mint") as env:
        passing, total = baseline_passing(env, task, args.timeout, args.source)
    print(f"source {args.source}: {total} tests, {len(passing)} passing; backend {backend}; "
          f"{len(candidates)} candidates per mode; load average {os.getloadavg()[0]:.2f}")

    def failing(run) -> list[str]:
        return sorted(t for t in passing if not (run.statuses.get(t) and run.statuses[t].counts_as_pass))

    started = time.monotonic()
    with open_environment(task, backend, limits, run_id="bench-mint") as env:
        for candidate in candidates:
            env.write_file(candidate.file, candidate.mutated_source)
            failing(run_suite(env, task, args.timeout))
            env.reset()
    warm_s = time.monotonic() - started
    print(f"warm     (whole suite once per candidate):      {warm_s:7.1f}s")

    full: dict[str, tuple] = {}
    started = time.monotonic()
    with open_environment(task, backend, limits, run_id="bench-mint") as env:
        for candidate in candidates:
            outcome = test_candidate(env, task, candidate, passing, args.timeout)
            full[candidate.key] = (outcome.verdict.value, sorted(outcome.fail_to_pass))
    full_s = time.monotonic() - started
    print(f"full     (whole-suite decision, 1 environment): {full_s:7.1f}s")

    selected: dict[str, tuple] = {}
    scopes: dict[str, int] = {}
    started = time.monotonic()
    envs = [open_environment(task, backend, limits, run_id="bench-mint")]
    try:
        map_started = time.monotonic()
        call_map = map_calls(envs[0], task, timeout=args.timeout)
        envs[0].reset()
        map_s = time.monotonic() - map_started
        envs += [open_environment(task, backend, limits, run_id="bench-mint") for _ in range(args.workers - 1)]
        queue = iter(candidates)
        lock = threading.Lock()

        def work(env) -> None:
            while True:
                with lock:
                    candidate = next(queue, None)
                if candidate is None:
                    return
                outcome = test_candidate(env, task, candidate, passing, args.timeout, call_map=call_map)
                with lock:
                    selected[candidate.key] = (outcome.verdict.value, sorted(outcome.fail_to_pass))
                    scopes[outcome.tests_run.value] = scopes.get(outcome.tests_run.value, 0) + 1

        threads = [threading.Thread(target=work, args=(env,)) for env in envs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for env in envs:
            env.close()
    selected_s = time.monotonic() - started
    print(f"selected (call map {map_s:.1f}s, {args.workers} environments):   {selected_s:7.1f}s  "
          f"decided by: {scopes}")

    kept = lambda decisions: {key for key, (verdict, _) in decisions.items() if verdict == "ok"}  # noqa: E731
    decisions_agree = kept(full) == kept(selected) and all(full[k][1] == selected[k][1] for k in kept(full))
    verdicts_agree = full == selected
    for key in sorted(set(full) | set(selected)):
        if full.get(key) != selected.get(key):
            print(f"  differs: {key}: full {full.get(key)} selected {selected.get(key)}")
    print(f"kept: {len(kept(full))} of {len(candidates)}; decisions agree: {decisions_agree}; "
          f"rejection reasons agree too: {verdicts_agree}")

    fresh_s = None
    if args.fresh:
        started = time.monotonic()
        for candidate in candidates:
            with open_environment(task, backend, limits, run_id="bench-mint") as env:
                env.write_file(candidate.file, candidate.mutated_source)
                failing(run_suite(env, task, args.timeout))
        fresh_s = time.monotonic() - started
        print(f"fresh    (new environment per candidate):       {fresh_s:7.1f}s")

    per_min = lambda seconds: round(len(candidates) / (seconds / 60), 2) if seconds else None  # noqa: E731
    print(json.dumps({
        "source": args.source,
        "backend": backend,
        "candidates": len(candidates),
        "workers": args.workers,
        "load_average": round(os.getloadavg()[0], 2),
        "warm_s": round(warm_s, 2),
        "full_s": round(full_s, 2),
        "selected_s": round(selected_s, 2),
        "map_s": round(map_s, 2),
        "warm_per_min": per_min(warm_s),
        "candidates_per_min_full": per_min(full_s),
        "candidates_per_min_selected": per_min(selected_s),
        "speedup_selected": round(warm_s / selected_s, 2),
        "speedup_selected_vs_full": round(full_s / selected_s, 2),
        "decided_by": scopes,
        "kept": len(kept(full)),
        "decisions_agree": decisions_agree,
        "verdicts_agree": verdicts_agree,
        **({"fresh_per_min": per_min(fresh_s), "speedup": round(fresh_s / warm_s, 2)} if fresh_s else {}),
    }))


if __name__ == "__main__":
    main()
