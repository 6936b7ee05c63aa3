"""What a hidden-test run costs beyond the bare test command, piece by piece, in one
container: the numbers behind the evaluator's `--tb=native` and behind what is left of
its overhead (BENCHMARKS.md, "Evaluation overhead, second pass").

One more-itertools example task (its large `tests/test_more.py`), in one warm container,
`--reps` repetitions of each side, interleaved (bench/interleave.py), medians and the
ratio to the baseline measured in the same run:

- `bare`: the bare pytest command on the module (the baseline);
- `bootstrap`: the bare command started through the evaluator's bootstrap (the runner
  that checks where pytest came from, swerve/harness/runner.py);
- `canary`, `canary_tb_short`, `canary_tb_native`: the module with a failing canary
  appended (as the evaluator plants one), pytest's default, `--tb=short` and
  `--tb=native` tracebacks;
- `beside_lifecycle`: the bare command while another thread creates, starts, runs one
  command in and removes containers in a loop (what the evaluator does around each
  test run, once per instance);
- `beside_shell`: the bare command while another thread runs git and shell commands in
  another container in a loop (an instance being prepared).

    python bench/test_run_costs.py [--reps 6]

The last line is a JSON object of medians (`*_s`) and ratios to `bare` (`*_ratio`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interleave import run_interleaved, timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODULE = "tests/test_more.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=6, help="repetitions of each side")
    args = parser.parse_args()

    from swerve.environments import open_environment
    from swerve.environments.shell import ansi_c_quote
    from swerve.harness.canaries import Canary, canary_source
    from swerve.harness.runner import BOOTSTRAP, bootstrap_command
    from swerve.harness.tasks import load_tasks

    task = load_tasks(ROOT / "examples" / "more_itertools.jsonl")[0]
    neighbour = load_tasks(ROOT / "examples" / "toolz.jsonl")[0]
    canary = Canary(module=MODULE, must_pass="test_keeps_ordering_12", must_fail="test_maps_tuples_44", token="ab" * 10)
    with open_environment(task, "docker", None, "bench-test-run-costs") as env, \
            open_environment(neighbour, "docker", None, "bench-test-run-costs") as other:
        wd = env.info.workdir
        env.exec(f"cd {wd} && cp {MODULE} /tmp/original.py && "
                 f"printf '%s' {ansi_c_quote(canary_source(canary))} > /tmp/canary.txt")
        bare = f"cd {wd} && PYTHONDONTWRITEBYTECODE=1 python -m pytest -q -p no:cacheprovider {MODULE} > /dev/null 2>&1"
        with_canary = f"cd {wd} && cat /tmp/original.py /tmp/canary.txt > {MODULE} && {bare}"
        plain = f"cd {wd} && cp /tmp/original.py {MODULE} && {bare}"
        env.exec(f"printf '%s' {ansi_c_quote(BOOTSTRAP)} > /tmp/runner.py && : > /tmp/added.txt")
        setup, booted = bootstrap_command(f"python -m pytest -q -p no:cacheprovider {MODULE}", workdir=wd,
                                          added_file="/tmp/added.txt", script="/tmp/runner.py", report="/tmp/report.json")
        through_bootstrap = (f"{setup}cd {wd} && cp /tmp/original.py {MODULE} && "
                             f"PYTHONDONTWRITEBYTECODE=1 {booted} > /dev/null 2>&1")
        env.exec(plain)  # warm the page cache, untimed

        def beside(loop):
            def side(_unit) -> float:
                stop = threading.Event()
                thread = threading.Thread(target=loop, args=(stop,))
                thread.start()
                try:
                    return timed(lambda: env.exec(plain))
                finally:
                    stop.set()
                    thread.join()
            return side

        def lifecycle(stop: threading.Event) -> None:
            while not stop.is_set():
                with open_environment(neighbour, "docker", None, "bench-test-run-costs") as spare:
                    spare.exec("true")

        def shell(stop: threading.Event) -> None:
            while not stop.is_set():
                other.exec(f"cd {other.info.workdir} && git status --short > /dev/null && "
                           "git ls-tree -r HEAD > /dev/null && cat toolz/itertoolz.py > /dev/null")

        sides = {
            "bare": lambda _unit: timed(lambda: env.exec(plain)),
            "bootstrap": lambda _unit: timed(lambda: env.exec(through_bootstrap)),
            "canary": lambda _unit: timed(lambda: env.exec(with_canary)),
            "canary_tb_short": lambda _unit: timed(lambda: env.exec(with_canary.replace("-q ", "-q --tb=short "))),
            "canary_tb_native": lambda _unit: timed(lambda: env.exec(with_canary.replace("-q ", "-q --tb=native "))),
            "beside_lifecycle": beside(lifecycle),
            "beside_shell": beside(shell),
        }
        seconds = run_interleaved([None] * args.reps, sides, rounds=1)
    medians = {name: statistics.median(values[0]) for name, values in seconds.items()}
    figures = {f"{name}_s": round(value, 3) for name, value in medians.items()}
    figures.update({f"{name}_ratio": round(value / medians["bare"], 3) for name, value in medians.items()
                    if name != "bare"})
    figures["reps"] = args.reps
    for name, value in medians.items():
        print(f"{name:18s} median {value:.3f} s" + ("" if name == "bare" else f"  ({value / medians['bare']:.2f}x bare)"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
