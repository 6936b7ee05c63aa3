"""What one test run of toolz costs with and without the task factory's sealed bytecode cache
(swerve/harness/bytecode_cache.py), in one docker environment.

First the cache's warm-up, timed in its parts once: opening it (the interpreter's bytecode
linked in), the first whole run writing it, the seal. Then `--rounds` rounds in which each
kind of run takes its turn; the medians come with their ratio to `runner`:

- `plain`: `python -m pytest -q -p no:cacheprovider`, bytecode written next to the sources
  and kept between runs (timed on its second run; the floor);
- `runner`: swerve's runner, no bytecode written (the factory's runs before the cache);
- `cached`: the runner on the sealed cache;
- `cached_mutated`: the same with toolz/utils.py changed (its two `return` lines swapped,
  same size), then a reset;
- `cached_selected`: toolz/tests/test_utils.py only, on the cache;
- `served`, `served_selected`: the whole suite and test_utils.py on the cache, each run a
  child forked by the environment's pytest server (swerve/harness/pytest_server.py),
  started once after the seal (`server_start_s`).

    python bench/bytecode_cache.py [--rounds 7]

The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from swerve.environments import Limits, open_environment
from swerve.harness.bytecode_cache import open_bytecode_cache, seal_bytecode_cache
from swerve.harness.hidden_tests import open_pytest_server, run_pytest_on
from swerve.harness.mint import source_task

SOURCE = "pypi:toolz==0.12.1"


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs of each kind, taking turns")
    args = parser.parse_args()

    task = source_task(SOURCE)
    with open_environment(task, "docker", Limits(exec_timeout_s=600), run_id="bench-bytecode") as env:
        run_pytest_on(env, task, [], timeout=600)  # the image and the environment are warm
        env.reset()
        folder = ""

        def open_cache() -> None:
            nonlocal folder
            folder = open_bytecode_cache(env)

        warmup = {"open_s": seconds(open_cache),
                  "first_run_s": seconds(lambda: run_pytest_on(env, task, [], timeout=600, bytecode_cache=folder)),
                  "seal_s": seconds(lambda: seal_bytecode_cache(env, folder))}
        if not folder:
            raise SystemExit("this environment cannot keep a bytecode cache")
        env.reset()
        server = None

        def start_server() -> None:
            nonlocal server
            server = open_pytest_server(env, task, folder)

        warmup["server_start_s"] = seconds(start_server)
        if server is None:
            raise SystemExit("this environment cannot keep a pytest server")
        original = env.read_file("toolz/utils.py")
        swapped = original.replace("return False", "return @").replace("return True", "return False").replace(
            "return @", "return True")

        def plain() -> None:
            command = "python -m pytest -q -p no:cacheprovider >/dev/null"
            env.exec(command)
            times["plain"].append(seconds(lambda: env.exec(command)))

        def mutated() -> None:
            env.write_file("toolz/utils.py", swapped)
            times["cached_mutated"].append(seconds(
                lambda: run_pytest_on(env, task, [], timeout=600, bytecode_cache=folder)))
            env.reset()

        kinds = {
            "runner": lambda: run_pytest_on(env, task, [], timeout=600),
            "cached": lambda: run_pytest_on(env, task, [], timeout=600, bytecode_cache=folder),
            "cached_selected": lambda: run_pytest_on(env, task, ["toolz/tests/test_utils.py"], timeout=600,
                                                     bytecode_cache=folder),
            "served": lambda: run_pytest_on(env, task, [], timeout=600, bytecode_cache=folder, server=server),
            "served_selected": lambda: run_pytest_on(env, task, ["toolz/tests/test_utils.py"], timeout=600,
                                                     bytecode_cache=folder, server=server),
        }
        times: dict[str, list[float]] = {name: [] for name in [*kinds, "plain", "cached_mutated"]}
        for _ in range(args.rounds):  # plain last: the runner without a prefix would read its __pycache__
            for name, run in kinds.items():
                times[name].append(seconds(run))
            plain()
            mutated()  # its reset removes what plain wrote
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:16s} {value:6.3f}s  ({value / medians['runner']:.2f} of runner)")
    print(json.dumps({
        "rounds": args.rounds,
        **{f"{name}_s": round(value, 3) for name, value in medians.items()},
        **{f"{name}_vs_runner": round(value / medians["runner"], 2) for name, value in medians.items()},
        **{key: round(value, 3) for key, value in warmup.items()},
    }))


if __name__ == "__main__":
    main()
