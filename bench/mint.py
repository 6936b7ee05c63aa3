"""Mint throughput: candidate bugs decided per minute, three ways in the same run on the
same candidates.

- warm: today's loop before test selection; one warm environment, `reset()` between
  candidates, the whole suite once per candidate (no verdict, no second run);
- full: the whole-suite decision (`test_candidate` without a call map: a kept
  candidate's suite runs twice), one warm environment;
- selected: today's `mint_tasks`: the call map made once (its time counted), then each
  candidate screened on the tests that start its function and confirmed by the whole
  suite, in `--workers` warm environments in parallel, each reading a sealed bytecode
  cache (swerve.harness.bytecode_cache) its first runs wrote, each run a child forked by
  the environment's pytest server (swerve.harness.pytest_server; opening the environments,
  warming the caches and starting the servers counted). `--no-bytecode-cache` leaves the
  cache out, `--no-pytest-server` the server.

Each mode's environments are opened once (counted in its time); the candidates are
split into `--rounds` rounds that run the three modes in turn, so load drift on a
shared machine falls on all of them.

`decisions_agree` is true when the selected path keeps and rejects exactly the
candidates the full path (no selection, no cache) does, with the same FAIL_TO_PASS
tests for the kept ones.
`--fresh` adds today's other baseline: a new container per candidate.
`selected_startup_s` is the selected path's time before its first candidate (environments,
call map, caches); `screened_candidate_s` the [min, median, max] seconds of its candidates
that ran tests, with `--workers` of them at once.

    python bench/mint.py --source pypi:toolz==0.12.1 --candidates 24

The last line is a JSON object; `speedup_selected` is selected against warm per minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from swerve.environments import Limits, open_environment, pick_backend
from swerve.environments.sources import prepare_repo
from swerve.harness.call_map import map_calls
from swerve.harness.candidate_verdicts import baseline_passing, run_suite, test_candidate
from swerve.harness.mint import source_task
from swerve.harness.warm_runs import WarmRuns, open_warm_runs, settle_warm_runs, warm_up
from swerve.harness.mutations import generate_candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="pypi:toolz==0.12.1", help="pypi:NAME==VERSION, git URL or path")
    parser.add_argument("--candidates", type=int, default=24, help="candidates decided in each mode")
    parser.add_argument("--seed", type=int, default=0, help="candidate order")
    parser.add_argument("--workers", type=int, default=2, help="environments of the selected path")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for one suite run")
    parser.add_argument("--backend", default="auto", help="docker, local or auto")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the candidates are split into this many rounds; each round runs warm, full, selected "
                             "in turn, so a change of machine load falls on all three")
    parser.add_argument("--fresh", action="store_true", help="also time a fresh container per candidate")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="the selected path compiles everything in every run, as before the cache")
    parser.add_argument("--no-pytest-server", action="store_true",
                        help="the selected path starts a new interpreter for every run, as before the server")
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

    seconds = {"warm": 0.0, "full": 0.0, "selected": 0.0}
    full: dict[str, tuple] = {}
    selected: dict[str, tuple] = {}
    scopes: dict[str, int] = {}
    lock = threading.Lock()

    def timed(mode: str, action) -> None:
        started = time.monotonic()
        try:
            action()
        finally:
            seconds[mode] += time.monotonic() - started

    def warm_round(env, chunk) -> None:
        for candidate in chunk:
            env.write_file(candidate.file, candidate.mutated_source)
            failing(run_suite(env, task, args.timeout))
            env.reset()

    def full_round(env, chunk) -> None:
        for candidate in chunk:
            outcome = test_candidate(env, task, candidate, passing, args.timeout)
            full[candidate.key] = (outcome.verdict.value, sorted(outcome.fail_to_pass))

    runs: dict[int, WarmRuns] = {}
    screened: list[float] = []  # seconds of each selected-path candidate that ran tests

    def selected_round(envs, chunk, call_map) -> None:
        queue = iter(chunk)

        def work(slot: int) -> None:
            env = envs[slot]
            while True:
                with lock:
                    candidate = next(queue, None)
                if candidate is None:
                    return
                outcome = test_candidate(env, task, candidate, passing, args.timeout, call_map=call_map,
                                         bytecode_cache=runs[slot].bytecode_cache, server=runs[slot].server)
                with lock:
                    selected[candidate.key] = (outcome.verdict.value, sorted(outcome.fail_to_pass))
                    scopes[outcome.tests_run.value] = scopes.get(outcome.tests_run.value, 0) + 1
                    if outcome.tests_run.value != "none":
                        screened.append(outcome.seconds)

        threads = [threading.Thread(target=work, args=(slot,)) for slot in range(len(envs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    envs: dict[str, list] = {"warm": [], "full": [], "selected": []}
    maps = {}
    rounds = max(1, min(args.rounds, len(candidates)))
    chunks = [candidates[i::rounds] for i in range(rounds)]
    try:
        timed("warm", lambda: envs["warm"].append(open_environment(task, backend, limits, run_id="bench-mint")))
        timed("full", lambda: envs["full"].append(open_environment(task, backend, limits, run_id="bench-mint")))

        serve = not args.no_pytest_server

        def open_warm():
            env = open_environment(task, backend, limits, run_id="bench-mint")
            return env, warm_up(env, task, timeout=args.timeout, serve=serve, cache=not args.no_bytecode_cache)

        def start_selected() -> None:  # as mint_tasks: the other environments open and warm meanwhile
            with ThreadPoolExecutor(max_workers=max(1, args.workers - 1)) as opener:
                others = [opener.submit(open_warm) for _ in range(args.workers - 1)]
                env0 = open_environment(task, backend, limits, run_id="bench-mint")
                envs["selected"].append(env0)
                map_started = time.monotonic()
                opened = open_warm_runs(env0, task, serve=serve, cache=not args.no_bytecode_cache)
                maps["map"] = map_calls(env0, task, timeout=args.timeout, bytecode_cache=opened.bytecode_cache,
                                        server=opened.server)
                runs[0] = settle_warm_runs(env0, task, opened)
                maps["map_s"] = time.monotonic() - map_started
                for future in others:
                    env, runs[len(envs["selected"])] = future.result()
                    envs["selected"].append(env)

        timed("selected", start_selected)
        startup_s = seconds["selected"]
        for chunk in chunks:
            timed("warm", lambda: warm_round(envs["warm"][0], chunk))
            timed("full", lambda: full_round(envs["full"][0], chunk))
            timed("selected", lambda: selected_round(envs["selected"], chunk, maps["map"]))
    finally:
        for env in [env for group in envs.values() for env in group]:
            env.close()
    warm_s, full_s, selected_s, map_s = seconds["warm"], seconds["full"], seconds["selected"], maps["map_s"]
    print(f"warm     (whole suite once per candidate):      {warm_s:7.1f}s")
    print(f"full     (whole-suite decision, 1 environment): {full_s:7.1f}s")
    print(f"selected (call map {map_s:.1f}s, {args.workers} environments): {selected_s:7.1f}s  decided by: {scopes}")

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
        "rounds": rounds,
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
        "selected_startup_s": round(startup_s, 2),
        "screened_candidate_s": [round(min(screened), 2), round(statistics.median(screened), 2), round(max(screened), 2)]
        if screened else None,
        "bytecode_caches": sum(1 for warm in runs.values() if warm.bytecode_cache),
        "pytest_servers": sum(1 for warm in runs.values() if warm.server),
        "kept": len(kept(full)),
        "decisions_agree": decisions_agree,
        "verdicts_agree": verdicts_agree,
        **({"fresh_per_min": per_min(fresh_s), "speedup": round(fresh_s / warm_s, 2)} if fresh_s else {}),
    }))


if __name__ == "__main__":
    main()
