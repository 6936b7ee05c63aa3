"""Where an `exec("true")` round trip goes, layer by layer, in one docker environment.

Each sample of every layer is followed by one docker SDK `exec_run` (as the interleaved
figure of bench/env_latency.py, `exec_p50_ms`/`exec_p95_ms`, does), the layers taking
turns; the baseline is `exec`, measured in the same run:

- `transport_minimal`: the shell's transport alone with the shortest script that still
  reports a status (`true;echo M $?`), no Python layer above it;
- `session_run`: `ShellSession._run`, the full per-command script (ANSI-C quoted `eval`,
  redirections, end marker with the session's nonce) and the output capture;
- `exec`: `DockerEnvironment.exec`, what agents call (adds the lock, the generation count
  and the disk watchdog, which queries the layer's size at most every 2 s);
- `exec_no_watchdog`: the same with the watchdog switched off.

`transport_minimal_burst` is the transport alone back to back (no SDK exec between).

    python bench/exec_breakdown.py [--n 200]            # the shell on FIFOs (local daemon)
    SWERVE_DOCKER_SHELL=socket python bench/exec_breakdown.py

The last line is a JSON object: p50/p95/p99 in ms per layer and p50/p95 ratios to `exec`.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import swerve.environments.docker as docker_backend
from swerve.environments.base import Limits
from swerve.environments.images import ensure_instance_image
from swerve.schema import Task

sys.path.insert(0, str(Path(__file__).resolve().parent))

from env_latency import percentile, timed as timed_ms  # noqa: E402


@contextmanager
def no_watchdog():
    saved = docker_backend.DISK_CHECK_AFTER_S, docker_backend.DISK_CHECK_EVERY_S
    docker_backend.DISK_CHECK_AFTER_S = docker_backend.DISK_CHECK_EVERY_S = float("inf")
    try:
        yield
    finally:
        docker_backend.DISK_CHECK_AFTER_S, docker_backend.DISK_CHECK_EVERY_S = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="interleaved samples per layer")
    parser.add_argument("--burst", type=int, default=1000, help="back-to-back transport round trips")
    args = parser.parse_args()

    client = docker_backend.docker_client()
    task = Task(instance_id="bench-exec-breakdown", repo="pytoolz/toolz", repo_source="pypi:toolz==0.12.1")
    image = ensure_instance_image(task, client=client)
    with docker_backend.DockerEnvironment(
        image.tag, instance_id=task.instance_id, base_commit=image.base_commit, workdir=image.workdir,
        limits=Limits(), run_id="bench",
    ) as env:
        container = client.containers.get(env.info.extra["container"])
        transport = env.shell._transport

        def minimal() -> None:
            transport.send(b"true;echo M $?\n")
            got = b""
            while not got.endswith(b"M 0\n"):
                got += transport.recv(10.0)

        def exec_no_watchdog() -> None:
            with no_watchdog():
                env.exec("true")

        layers = {
            "transport_minimal": minimal,
            "session_run": lambda: env.shell._run("true", timeout=60, limit=1 << 16),
            "exec": lambda: env.exec("true"),
            "exec_no_watchdog": exec_no_watchdog,
        }
        for run in layers.values():
            for _ in range(10):
                run()
        burst = [timed_ms(minimal) for _ in range(args.burst)]
        samples: dict[str, list[float]] = {name: [] for name in layers}
        names = list(layers)
        for i in range(args.n):
            for name in names[i % len(names):] + names[: i % len(names)]:
                samples[name].append(timed_ms(layers[name]))
                container.exec_run(["true"], user="swerve")
        kind = type(transport).__name__

    figures: dict[str, object] = {"transport": kind}
    for name, values in samples.items():
        for q in (50, 95, 99):
            figures[f"{name}_p{q}_ms"] = round(percentile(values, q / 100), 3)
    figures["transport_minimal_burst_p50_ms"] = round(percentile(burst, 0.5), 3)
    for name in layers:
        if name != "exec":
            for q in (50, 95):
                figures[f"{name}_p{q}_ratio"] = round(figures[f"{name}_p{q}_ms"] / figures[f"exec_p{q}_ms"], 2)
    for name in layers:
        print(f"{name:18s} p50 {figures[f'{name}_p50_ms']:.3f}  p95 {figures[f'{name}_p95_ms']:.3f}  "
              f"p99 {figures[f'{name}_p99_ms']:.3f} ms")
    figures["n"] = args.n
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
