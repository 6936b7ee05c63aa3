"""Many attempts per task: `swerve run --attempts N`.

Layout of a run folder with N > 1 attempts (N = 1 keeps the single-attempt layout):

    RUN/run.json                       kind "attempts", the policy, N, the seed of each attempt
    RUN/attempts/RUNID-aK/             attempt K (1..N): a complete single-attempt run folder
        run.json                       (its "attempt" and "seed"), trajectories.jsonl,
        predictions.jsonl, instances/ID/report.json, summary.json
    RUN/infra_failures.jsonl           episodes that hit infrastructure errors ("ID#aK")

Each attempt folder is an ordinary run folder, so every tool that reads one (the
evaluator, `swerve report`, `swerve teach`) works on it unchanged. Attempt K runs the
policy with seed `base + K - 1`; all (task, attempt) episodes share one pool of workers.
A rerun resumes each attempt on its own; raising N adds attempts, keeping those done.
The attempt folder's name is also its evaluation run id (container labels), hence the
run id in it.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import swerve
from swerve.agents.batch import (
    MANIFEST,
    TRAJECTORIES,
    BatchOptions,
    BatchResult,
    _check_unique,
    _evaluate_and_link,
    _run_all,
    _run_one,
    _write_manifest,
    _Writer,
)
from swerve.agents.trajectory import read_trajectories
from swerve.fileio import atomic_write_json, run_folder_lock
from swerve.runrecord import RECORD_VERSION, tasks_source
from swerve.harness.abandon import reap_orphaned_containers
from swerve.interrupts import stoppable
from swerve.schema import Task

ATTEMPTS_DIR = "attempts"
UNIT_SEPARATOR = "#a"


def attempt_folder(out: Path, run_id: str, attempt: int) -> Path:
    return out / ATTEMPTS_DIR / f"{run_id}-a{attempt}"


def reseeded(policy: Any, seed: int) -> Any:
    """A shallow copy of a shared (model-backed) policy with its own seed, so N attempts
    load the model once; a policy without a `seed` attribute is returned as it is."""
    if not hasattr(policy, "seed"):
        return policy
    clone = copy.copy(policy)
    clone.seed = seed
    if hasattr(clone, "_calls"):
        clone._calls = 0
    return clone


def run_attempts(
    tasks: Iterable[Task],
    factory_for_seed: Callable[[int], Callable[[Task], Any]],
    *,
    attempts: int,
    out_dir: str | os.PathLike,
    base_seed: int = 0,
    options: BatchOptions | None = None,
    **settings: Any,
) -> BatchResult:
    """Run `attempts` episodes per task (attempt K with seed base_seed + K - 1) into
    out_dir/attempts/, grading every attempt with `evaluate`. Returns a BatchResult whose
    ids are `ID#aK` units. `options` / keyword `settings`: the BatchOptions of run_batch."""
    if attempts < 2:
        raise ValueError("run_attempts is for --attempts 2 or more; run_batch runs one attempt")
    tasks = list(tasks)
    _check_unique(tasks)
    out = Path(out_dir)
    opts = BatchOptions.of(options, **settings)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [base_seed + k for k in range(attempts)]
    with run_folder_lock(out):
        run_id = _write_top_manifest(out, opts.run_id, attempts, seeds, opts.policy_spec, opts.backend, opts.workers,
                                     tasks_source(opts.tasks_from, tasks).model_dump(mode="json"))
        reap_orphaned_containers(run_id, opts.backend)
        folders: dict[int, Path] = {}
        writers: dict[int, _Writer] = {}
        done: dict[int, set[str]] = {}
        for k in range(1, attempts + 1):
            folder = attempt_folder(out, run_id, k)
            folder.mkdir(parents=True, exist_ok=True)
            _write_manifest(folder, folder.name, opts, tasks=tasks)
            _mark_attempt(folder, k, seeds[k - 1], run_id)
            finished = {t.instance_id: t for t in read_trajectories(folder / TRAJECTORIES)}
            folders[k], writers[k], done[k] = folder, _Writer(folder, finished, opts.model_name), set(finished)
        result = BatchResult(out_dir=out, run_id=run_id)
        units: dict[str, tuple[Task, int]] = {}
        for k in range(1, attempts + 1):
            for task in tasks:
                unit = f"{task.instance_id}{UNIT_SEPARATOR}{k}"
                if task.instance_id in done[k]:
                    result.skipped.append(unit)
                else:
                    units[unit] = (task, k)
        factories = {k: factory_for_seed(seeds[k - 1]) for k in range(1, attempts + 1)}
        cancel = threading.Event()

        def one(unit_task: Task):
            task, k = units[unit_task.instance_id]
            trajectory = _run_one(task, factories[k], opts, run_id, cancel)
            if trajectory is not None:
                trajectory.manifest["sample"] = k
                trajectory.manifest["samples"] = attempts
                trajectory.manifest["seed"] = seeds[k - 1]
            return trajectory

        todo = [task.model_copy(update={"instance_id": unit}) for unit, (task, _) in units.items()]
        with stoppable():
            _run_all(todo, one, result, _AttemptWriter(out, writers), cancel, opts.workers, opts.progress,
                     total=len(tasks) * attempts, run_id=run_id)
            if opts.evaluate:
                result.resolved = []
                for k, folder in folders.items():
                    resolved, errors = _evaluate_and_link(folder, tasks, folder.name, opts.backend, opts.workers,
                                                          opts.evaluate_options or {})
                    result.resolved += [f"{iid}{UNIT_SEPARATOR}{k}" for iid in resolved]
                    result.grading_errors.update({f"{iid}{UNIT_SEPARATOR}{k}": e for iid, e in errors.items()})
    return result


class _AttemptWriter:
    """Routes each finished trajectory to its attempt's writer (by manifest["sample"])."""

    def __init__(self, out: Path, writers: dict[int, _Writer]) -> None:
        self.out = out
        self.writers = writers

    def add(self, trajectory) -> None:
        self.writers[int(trajectory.manifest["sample"])].add(trajectory)


def _write_top_manifest(out: Path, run_id: str | None, attempts: int, seeds: list[int], policy_spec: str | None,
                        backend: str, workers: int, tasks: dict[str, Any] | None = None) -> str:
    path = out / MANIFEST
    existing: dict[str, Any] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON; fix or delete it to start the run afresh") from exc
        if existing.get("kind") != "attempts" and (out / TRAJECTORIES).exists():
            raise ValueError(f"{out} holds a single-attempt run; use another --out for --attempts {attempts}")
    chosen = run_id or existing.get("run_id") or out.resolve().name
    if existing.get("run_id") and run_id and run_id != existing["run_id"]:
        raise ValueError(f"{out} holds run {existing['run_id']!r}, not {run_id!r}; use another --out or drop --run-id")
    previous = existing.get("policy")
    if policy_spec and previous and policy_spec != previous:
        raise ValueError(f"{out} holds attempts of policy {previous!r}, not {policy_spec!r}; use another --out")
    old_seeds = existing.get("seeds") or []
    if old_seeds and old_seeds != seeds[: len(old_seeds)]:
        raise ValueError(f"{out} was run with seeds from {old_seeds[0]}; pass the same --seed to resume it")
    atomic_write_json(path, {
        **existing,
        "record_version": RECORD_VERSION,
        "run_id": chosen,
        "kind": "attempts",
        "swerve_version": swerve.__version__,
        "created_at": existing.get("created_at") or datetime.now(timezone.utc).isoformat(),
        "attempts": max(attempts, int(existing.get("attempts") or 0)),
        "seeds": seeds if len(seeds) >= len(old_seeds) else old_seeds,
        "policy": policy_spec or previous,
        "tasks": tasks or existing.get("tasks") or {},
        "settings": {"backend": backend, "workers": workers},
    })
    return chosen


def _mark_attempt(folder: Path, attempt: int, seed: int, run_id: str) -> None:
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update({"attempt": attempt, "seed": seed, "attempts_of": run_id})
    atomic_write_json(path, manifest)
