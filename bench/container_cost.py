"""What one container costs the machine: Docker's own create, start and remove against
swerve's whole environment (open, one command, close), in the same run.

    python bench/container_cost.py [--reps 12] [--settle 0.3]

Two sides, interleaved over `--reps` repetitions (bench/interleave.py), on the first
bundled toolz task's instance image:

- `docker` (the baseline): the Docker SDK alone, `containers.run` of `sleep infinity`
  with networking off, then `remove(force=True)`: what any harness that gives each
  instance a fresh container pays, whatever it does inside;
- `environment`: `DockerEnvironment` opened on the same image (its hardened options,
  both shells on FIFOs, the control round trip), one `exec("true")`, `close()`.

Each sample is the machine's busy CPU (/proc/stat: the daemon, containerd, runc and the
kernel count) from the call's start to `--settle` seconds after it returns (so a removed
container's asynchronous teardown lands in its own sample), less the idle background
measured before and after. The last line is one JSON object: per side the median CPU
and wall seconds, and `environment_over_docker_cpu` / `_wall` (medians of the per-rep
ratios) with their spread.

This is the floor under evaluation's per-instance overhead (bench/eval_overhead.py): what
is left beyond `docker` is swerve's to cut; `docker` itself goes only by not starting a
container per instance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import ratios, run_interleaved, summarize  # noqa: E402
from machine import background_cpu_per_s, machine_cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "bench-container-cost"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12, help="repetitions of each side (default 12)")
    parser.add_argument("--settle", type=float, default=0.3,
                        help="seconds after each call still counted in its sample (default 0.3)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")

    from swerve.environments.docker import LABEL_RUN, DockerEnvironment, docker_client, owner_labels
    from swerve.environments.images import ensure_instance_image
    from swerve.harness.tasks import load_tasks

    client = docker_client()
    task = load_tasks(ROOT / "examples" / "toolz.jsonl")[0]
    image = ensure_instance_image(task, client=client)

    def docker_only() -> None:
        # owner-labelled like swerve's own containers, so `swerve env prune` removes any a killed run leaves
        container = client.containers.run(image.tag, ["sleep", "infinity"], detach=True, network_mode="none",
                                          network_disabled=True, labels={LABEL_RUN: RUN_ID, **owner_labels()})
        container.remove(force=True)

    def environment() -> None:
        env = DockerEnvironment(image.tag, instance_id=task.instance_id, base_commit=image.base_commit,
                                workdir=image.workdir, run_id=RUN_ID, client=client,
                                image_digest=image.id)
        try:
            env.exec("true")
        finally:
            env.close()

    background_before = background_cpu_per_s()
    # per side and rep: (machine CPU-seconds, seconds counted), the background taken off at the end
    raw: dict[str, list[tuple[float, float]]] = {"docker": [(0.0, 0.0)] * args.reps,
                                                  "environment": [(0.0, 0.0)] * args.reps}

    def side(name, run):
        def measure(rep: int) -> float:
            time.sleep(args.settle)  # the previous sample's tail is not this one's
            cpu_before, began = machine_cpu_seconds(), time.monotonic()
            run()
            wall = time.monotonic() - began
            time.sleep(args.settle)
            raw[name][rep] = (machine_cpu_seconds() - cpu_before, wall + args.settle)
            return wall
        return measure

    walls = run_interleaved(list(range(args.reps)), {"docker": side("docker", docker_only),
                                                      "environment": side("environment", environment)}, rounds=1,
                            on_done=lambda _r, rep, name, wall: print(f"rep {rep} {name}: {wall:.3f} s", flush=True))
    background = (background_before + background_cpu_per_s()) / 2
    cpu_by_rep = {name: [spent - background * counted for spent, counted in samples] for name, samples in raw.items()}
    wall_by_rep = {name: per_round[0] for name, per_round in walls.items()}
    result = {
        "reps": args.reps,
        "background_cpu_per_s": round(background, 4),
        **{f"{name}_cpu_s": round(statistics.median(values), 4) for name, values in cpu_by_rep.items()},
        **{f"{name}_wall_s": round(statistics.median(values), 4) for name, values in wall_by_rep.items()},
    }
    for key, series in (("cpu", cpu_by_rep), ("wall", wall_by_rep)):
        summary = summarize(ratios(series["environment"], series["docker"]))
        result[f"environment_over_docker_{key}"] = summary["median"]
        result[f"environment_over_docker_{key}_spread"] = {k: summary[k] for k in ("min", "max", "iqr")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
