"""Round-trip latency of swerve's docker environment against the docker SDK.

Measures, in one run on the same instance image (toolz from its PyPI sdist):
- exec("true") through swerve's persistent shell vs container.exec_run("true"), one of
  each in turn (exec_p50_ms), and swerve's exec back to back (exec_burst_p50_ms: no SDK
  exec in between, whose clean-up in the daemon would otherwise overlap the next one),
  and paced (exec_paced_p50_ms: one swerve exec, then an idle wait as long as the SDK's
  exec took in the interleaved loop: the same rhythm without the daemon's work);
- reset() vs removing and re-creating the container, and the CPU a re-creation costs the
  whole machine (`recreate_cpu_ms`: daemon, containerd, runc, the kernel's namespace
  teardown, this process; busy time from /proc/stat, settled before and after, less the
  machine's idle-time background);
- container creation to first command, with images cached.
The last line is a JSON object (see BENCHMARKS.md).

    python bench/env_latency.py [--n 200] [--resets 30] [--burst 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from machine import background_cpu_per_s, machine_cpu_seconds

from swerve.environments.base import Limits
from swerve.environments.docker import DockerEnvironment, docker_client
from swerve.environments.images import ensure_instance_image
from swerve.schema import Task


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


SETTLE_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="exec round-trips per method")
    parser.add_argument("--resets", type=int, default=30, help="resets / re-creations per method")
    parser.add_argument("--burst", type=int, default=1000, help="back-to-back exec round-trips")
    args = parser.parse_args()

    client = docker_client()
    idle_busy = background_cpu_per_s(SETTLE_S)
    task = Task(instance_id="bench-env-latency", repo="pytoolz/toolz", repo_source="pypi:toolz==0.12.1")
    image = ensure_instance_image(task, client=client)

    def open_env() -> DockerEnvironment:
        return DockerEnvironment(
            image.tag, instance_id=task.instance_id, base_commit=image.base_commit,
            workdir=image.workdir, limits=Limits(), run_id="bench",
        )

    first_command = []
    for _ in range(5):
        start = time.perf_counter()
        env = open_env()
        env.exec("true")
        first_command.append(time.perf_counter() - start)
        env.close()

    with open_env() as env:
        container = client.containers.get(env.info.extra["container"])
        ours, sdk = [], []
        for _ in range(10):
            env.exec("true")
        burst = [timed(lambda: env.exec("true")) for _ in range(args.burst)]
        for _ in range(args.n):  # interleaved so both see the same machine load
            ours.append(timed(lambda: env.exec("true")))
            sdk.append(timed(lambda: container.exec_run(["true"], user="swerve")))
        # The same pacing with the SDK's exec replaced by an idle wait of the time it took:
        # what is left of the interleaved tail once the daemon has no exec to clean up.
        paced = []
        for gap_ms in sdk:
            paced.append(timed(lambda: env.exec("true")))
            time.sleep(gap_ms / 1000.0)
        resets = []
        for _ in range(args.resets):
            env.write_file("toolz/itertoolz.py", "broken\n")
            env.write_file("scratch.txt", "untracked\n")
            resets.append(timed(env.reset))
        assert env.diff() == ""

    recreate = []
    env = open_env()
    time.sleep(SETTLE_S)
    busy_before = machine_cpu_seconds()
    for _ in range(max(5, args.resets // 3)):
        begin = time.perf_counter()
        env.close()
        env = open_env()
        env.exec("true")
        recreate.append((time.perf_counter() - begin) * 1000.0)
    env.close()
    time.sleep(SETTLE_S)  # the kernel tears a network namespace down after the container has gone
    recreate_cpu = (machine_cpu_seconds() - busy_before - SETTLE_S * idle_busy) / (len(recreate) + 1) * 1000.0

    figures = {
        "exec_p50_ms": round(percentile(ours, 0.5), 3),
        "exec_p95_ms": round(percentile(ours, 0.95), 3),
        "sdk_exec_p50_ms": round(percentile(sdk, 0.5), 3),
        "sdk_exec_p95_ms": round(percentile(sdk, 0.95), 3),
        "exec_speedup": round(percentile(sdk, 0.5) / percentile(ours, 0.5), 1),
        "exec_paced_p50_ms": round(percentile(paced, 0.5), 3),
        "exec_paced_p95_ms": round(percentile(paced, 0.95), 3),
        "exec_burst_p50_ms": round(percentile(burst, 0.5), 3),
        "exec_burst_p95_ms": round(percentile(burst, 0.95), 3),
        "reset_p50_ms": round(percentile(resets, 0.5), 2),
        "reset_p95_ms": round(percentile(resets, 0.95), 2),
        "recreate_p50_ms": round(percentile(recreate, 0.5), 1),
        "reset_speedup": round(percentile(recreate, 0.5) / percentile(resets, 0.5), 1),
        "recreate_cpu_ms": round(recreate_cpu, 1),
        "first_command_s": round(statistics.median(first_command), 3),
        "n": args.n,
    }
    print(f"exec true     : swerve p50 {figures['exec_p50_ms']} ms (p95 {figures['exec_p95_ms']}), "
          f"SDK exec_run p50 {figures['sdk_exec_p50_ms']} ms -> {figures['exec_speedup']}x")
    print(f"exec paced like that, idle instead of the SDK's exec: p50 {figures['exec_paced_p50_ms']} ms "
          f"(p95 {figures['exec_paced_p95_ms']})")
    print(f"exec back to back: p50 {figures['exec_burst_p50_ms']} ms (p95 {figures['exec_burst_p95_ms']}, "
          f"{args.burst} round trips)")
    print(f"reset         : p50 {figures['reset_p50_ms']} ms vs remove+recreate {figures['recreate_p50_ms']} ms "
          f"-> {figures['reset_speedup']}x")
    print(f"first command : {figures['first_command_s']} s from container creation (images cached)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
