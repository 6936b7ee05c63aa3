"""Batch runs: one episode per task, in parallel, resumable, optionally graded.

The run directory follows the agreed layout (run.json, trajectories.jsonl,
predictions.jsonl, and the evaluator's instances/ and summary.json). A task is
finished once its trajectory is in trajectories.jsonl; a rerun skips it.
Infrastructure failures are retried and, when they persist, listed in
infra_failures.jsonl — never written as a trajectory — so the next run tries
them again. Containers carry the run id as label `swerve.run`; a rerun removes
those a killed earlier run left behind.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import swerve
from swerve.agents.loop import EpisodeCancelled, EpisodeLimits, run_episode
from swerve.agents.trajectory import (
    append_trajectory,
    finished_instance_ids,
    read_trajectories,
    rewrite_trajectories,
)
from swerve.environments.base import Limits
from swerve.errors import InfraError, SwerveError
from swerve.runrecord import finish_run_record
from swerve.fileio import RUN_FOLDER_LOCK, append_jsonl, iter_jsonl, run_folder_lock, write_jsonl
from swerve.harness.abandon import reap_orphaned_containers
from swerve.interrupts import stoppable
from swerve.schema import Grade, Prediction, Task, Trajectory

log = logging.getLogger(__name__)

TRAJECTORIES = "trajectories.jsonl"
PREDICTIONS = "predictions.jsonl"
INFRA_FAILURES = "infra_failures.jsonl"
MANIFEST = "run.json"
LOCK = RUN_FOLDER_LOCK
ABANDON_WAIT_S = 3.0


@dataclass
class BatchResult:
    """What a batch run did this time, and where its files are."""

    out_dir: Path
    run_id: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    infra_failures: dict[str, str] = field(default_factory=dict)
    resolved: list[str] | None = None
    grading_errors: dict[str, str] = field(default_factory=dict)
    exit_statuses: dict[str, str] = field(default_factory=dict)

    @property
    def trajectories_path(self) -> Path:
        return self.out_dir / TRAJECTORIES

    @property
    def predictions_path(self) -> Path:
        return self.out_dir / PREDICTIONS


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs its episodes: shared by `run_batch` and `run_attempts`
    (swerve.agents.attempts), which take these fields as keyword arguments too.

    `agent` (a swerve.agents.config.AgentConfig) gives every episode its prompts, tools,
    parser and (unless `limits` is given) limits; `env_limits` default to the standard
    environment limits with the episode's command timeout. `open_env(task, backend,
    limits, run_id)` defaults to swerve's open_environment (tests pass the scratch
    backend). With `evaluate`, the predictions are graded by the evaluator into the run
    folder. `policy_spec`, `tasks_from` (the task file or dataset name) and a hash of the
    task rows are recorded in run.json (swerve.runrecord). Infrastructure failures are
    retried `max_infra_retries` times, `retry_delay_s` apart (growing)."""

    workers: int = 1
    backend: str = "auto"
    limits: EpisodeLimits | None = None
    env_limits: Limits | None = None
    evaluate: bool = False
    run_id: str | None = None
    model_name: str | None = None
    policy_spec: str | None = None
    max_infra_retries: int = 2
    retry_delay_s: float = 2.0
    progress: bool = True
    open_env: Callable[..., Any] | None = None
    evaluate_options: dict[str, Any] | None = None
    agent: Any = None
    tasks_from: str | None = None

    @classmethod
    def of(cls, options: "BatchOptions | None" = None, **settings: Any) -> "BatchOptions":
        """`options` (default: the defaults) with `settings` applied, and the defaults that
        depend on other fields filled in (limits, env_limits, open_env; an unknown backend
        is bad input here, before any task starts). An unknown keyword is a TypeError."""
        unknown = sorted(set(settings) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown batch option(s) {', '.join(unknown)}; the options are those of BatchOptions")
        chosen = replace(options or cls(), **settings)
        limits = chosen.limits or (chosen.agent.limits if chosen.agent is not None else EpisodeLimits())
        env_limits = chosen.env_limits or Limits(exec_timeout_s=limits.command_timeout_s)
        open_env = chosen.open_env
        if open_env is None:
            from swerve.environments import open_environment as open_env
            from swerve.environments.registry import check_backend

            check_backend(chosen.backend)
        return replace(chosen, limits=limits, env_limits=env_limits, open_env=open_env)


def run_batch(
    tasks: Iterable[Task],
    policy_factory: Callable[[Task], Any],
    *,
    out_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    record_kind: str = "run",
    **settings: Any,
) -> BatchResult:
    """Run `policy_factory(task)` on every task not finished yet in `out_dir`.

    `options` and/or keyword `settings` are the BatchOptions fields (workers, backend,
    limits, evaluate, agent, open_env, ...). With `evaluate`, each trajectory gets its
    `grade` and `report_path`. Resuming a directory with a different policy spec is
    refused (its finished tasks belong to another policy).
    """
    tasks = list(tasks)
    _check_unique(tasks)
    out = Path(out_dir)
    opts = BatchOptions.of(options, **settings)
    out.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(out):
        run_id = _write_manifest(out, opts.run_id, opts, tasks=tasks, kind=record_kind)
        reap_orphaned_containers(run_id, opts.backend)
        done = {t.instance_id: t for t in read_trajectories(out / TRAJECTORIES)}
        result = BatchResult(out_dir=out, run_id=run_id)
        result.skipped = [t.instance_id for t in tasks if t.instance_id in done]
        todo = [t for t in tasks if t.instance_id not in done]
        writer = _Writer(out, done, opts.model_name)
        cancel = threading.Event()

        def one(task: Task) -> Trajectory | None:
            return _run_one(task, policy_factory, opts, run_id, cancel)

        with stoppable():
            _run_all(todo, one, result, writer, cancel, opts.workers, opts.progress, total=len(tasks), run_id=run_id)
            if opts.evaluate:
                result.resolved, result.grading_errors = _evaluate_and_link(
                    out, tasks, run_id, opts.backend, opts.workers, opts.evaluate_options or {})
        finish_run_record(out)
    return result


def _run_all(
    todo: list[Task],
    one: Callable[[Task], Trajectory | None],
    result: BatchResult,
    writer: "_Writer",
    cancel: threading.Event,
    workers: int,
    progress: bool,
    total: int,
    run_id: str = "",
) -> None:
    """Run the pending episodes on a thread pool, recording each one as it finishes.
    On an interrupt the episodes in flight are abandoned: their environments closed at
    once, nothing of theirs written, and the threads given a few seconds at most."""
    with _progress_bar(progress, total=total, done=len(result.skipped)) as advance:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="swerve-episode")
        futures: dict = {}
        try:
            futures = {pool.submit(one, task): task for task in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = futures[future]
                    try:
                        trajectory = future.result()
                    except Exception as failure:
                        _record_failure(result, writer.out, task, failure)
                        advance(task.instance_id, "infra failure")
                        continue
                    if trajectory is None:
                        continue
                    writer.add(trajectory)
                    result.ran.append(task.instance_id)
                    result.exit_statuses[task.instance_id] = trajectory.exit_status
                    advance(task.instance_id, trajectory.exit_status)
        except BaseException:
            cancel.set()
            for future in futures:
                future.cancel()
            _abandon_episodes(run_id, [f for f in futures if not f.cancelled()])
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _record_failure(result: BatchResult, out: Path, task: Task, failure: Exception) -> None:
    """List a task that did not finish (infra, or a swerve bug); it is retried next run."""
    kind = "infra" if isinstance(failure, _InfraFailure) else "internal"
    if kind == "internal":
        log.error("episode on %s crashed (a swerve bug, not the model's result)", task.instance_id, exc_info=failure)
    message = str(failure) if kind == "infra" else f"{type(failure).__name__}: {failure}"
    result.infra_failures[task.instance_id] = message
    append_jsonl(out / INFRA_FAILURES, {
        "instance_id": task.instance_id,
        "kind": kind,
        "error": message,
        "at": datetime.now(timezone.utc).isoformat(),
    })


def _abandon_episodes(run_id: str, running: list) -> None:
    """Close every environment still open, in parallel, so that workers stuck in a long
    command return now; their episodes are dropped (never written) and rerun on resume.
    The workers get a moment to return (one opening an environment closes it), then any
    container of the run this process started is removed."""
    from swerve.harness.abandon import close_in_parallel, remove_own_containers

    give_up = time.monotonic() + ABANDON_WAIT_S
    cleanup = sys.modules.get("swerve.environments.cleanup")
    if cleanup is not None:
        close_in_parallel(cleanup.open_environments(), wait_s=ABANDON_WAIT_S)
    wait(running, timeout=max(0.0, give_up - time.monotonic()))
    remove_own_containers(run_id)


class _InfraFailure(SwerveError):
    """An episode that hit infrastructure errors on every try."""


def _run_one(
    task: Task,
    policy_factory: Callable[[Task], Any],
    opts: BatchOptions,
    run_id: str,
    cancel: threading.Event,
) -> Trajectory | None:
    """One episode, with up to `opts.max_infra_retries` retries of infrastructure failures."""
    max_infra_retries = opts.max_infra_retries
    last_error: Exception | None = None
    for attempt in range(max_infra_retries + 1):
        if cancel.is_set():
            return None
        try:
            policy = policy_factory(task)
            with opts.open_env(task, opts.backend, opts.env_limits, run_id) as env:
                trajectory = run_episode(task, env, policy, opts.limits, cancel=cancel, agent=opts.agent)
            trajectory.manifest["run_id"] = run_id
            trajectory.manifest["attempt"] = attempt + 1
            return trajectory
        except EpisodeCancelled:
            return None
        except InfraError as exc:
            if cancel.is_set():
                return None
            last_error = exc
            log.warning("infra failure on %s (try %d of %d): %s", task.instance_id, attempt + 1, max_infra_retries + 1, exc)
            if attempt < max_infra_retries:
                time.sleep(opts.retry_delay_s * (attempt + 1))
    raise _InfraFailure(f"{type(last_error).__name__}: {last_error}")


class _Writer:
    """Appends finished trajectories and their predictions.

    predictions.jsonl is rewritten once, from the finished trajectories, when the run
    starts (one line per instance, any torn line gone); each episode then appends.
    """

    def __init__(self, out: Path, done: dict[str, Trajectory], model_name: str | None) -> None:
        self.out = out
        self.model_name = model_name
        self.lock = threading.Lock()
        write_jsonl(out / PREDICTIONS, [self._prediction(trajectory) for trajectory in done.values()])

    def _prediction(self, trajectory: Trajectory) -> dict[str, Any]:
        return Prediction(
            instance_id=trajectory.instance_id,
            model_name_or_path=self.model_name or model_name_of(trajectory),
            model_patch=trajectory.final_patch,
        ).model_dump()

    def add(self, trajectory: Trajectory) -> None:
        with self.lock:
            append_trajectory(self.out / TRAJECTORIES, trajectory)
            append_jsonl(self.out / PREDICTIONS, self._prediction(trajectory))


def model_name_of(trajectory: Trajectory) -> str:
    """The name predictions carry: the policy's model when it has one, else the policy's name."""
    described = trajectory.manifest.get("policy") or {}
    return str(described.get("model") or described.get("model_name_or_path") or trajectory.manifest.get("policy_name") or "unknown")


def _check_unique(tasks: list[Task]) -> None:
    seen: set[str] = set()
    for task in tasks:
        if task.instance_id in seen:
            raise ValueError(f"task {task.instance_id} appears twice in the task list; remove the duplicate")
        seen.add(task.instance_id)


def _write_manifest(
    out: Path, run_id: str | None, opts: BatchOptions, *, tasks: list[Task] | None = None, kind: str = "run",
    extra_settings: dict[str, Any] | None = None,
) -> str:
    """Create run.json (a swerve.runrecord.RunRecord), or keep the existing one's run id
    (a resumed run is the same run). `opts` is resolved (BatchOptions.of)."""
    backend, limits, env_limits, workers = opts.backend, opts.limits, opts.env_limits, opts.workers
    model_name, policy_spec, tasks_from = opts.model_name, opts.policy_spec, opts.tasks_from
    from swerve.runrecord import RunRecord, now_iso, read_run_record, tasks_source, write_run_record

    existing = read_run_record(out)
    chosen = run_id or (existing.run_id if existing else None) or _default_run_id(out)
    if existing is not None and run_id and run_id != existing.run_id:
        raise ValueError(f"{out} holds run {existing.run_id!r}, not {run_id!r}; use another --out or drop --run-id")
    previous_spec = existing.policy if existing else None
    if policy_spec and previous_spec and policy_spec != previous_spec:
        raise ValueError(
            f"{out} holds a run of policy {previous_spec!r}, not {policy_spec!r}; "
            "use another --out (or delete the directory to start over)"
        )
    source = tasks_source(tasks_from, tasks) if (tasks_from or tasks is not None) else None
    if existing is not None and source is not None and not tasks_from and existing.tasks.source:
        source = source.model_copy(update={"source": existing.tasks.source, "source_abs": existing.tasks.source_abs})
    settings = {
        **(existing.settings if existing else {}),
        **(extra_settings or {}),
        "backend": backend,
        "workers": workers,
        "limits": asdict(limits),
        "env_limits": asdict(env_limits),
        "model_name": model_name,
        "policy": policy_spec or previous_spec,
    }
    base = existing.model_dump() if existing else {}
    base.update(
        record_version=RunRecord.model_fields["record_version"].default,
        run_id=chosen,
        kind=existing.kind if existing and existing.kind != "run" else kind,
        swerve_version=swerve.__version__,
        tasks=source if source is not None else (existing.tasks if existing else {}),
        policy=policy_spec or previous_spec,
        model_name=model_name or (existing.model_name if existing else None),
        settings=settings,
        created_at=(existing.created_at if existing else None) or now_iso(),
        resumed_at=now_iso() if existing else None,
        ended_at=None,
    )
    write_run_record(out, RunRecord.model_validate(base))
    return chosen


def _default_run_id(out: Path) -> str:
    """The directory's name, as in the layout RUN_DIR = DIR/RUN_ID."""
    return out.resolve().name


def _evaluate_and_link(
    out: Path, tasks: list[Task], run_id: str, backend: str, workers: int, options: dict[str, Any]
) -> tuple[list[str], dict[str, str]]:
    """Grade predictions.jsonl with the evaluator into `out` and attach grades to trajectories.

    The evaluator writes RUN_DIR = output_dir/run_id, so it is given out's parent and name.
    """
    from swerve.harness.evaluate import evaluate

    predictions = {
        record["instance_id"]: Prediction.model_validate(record) for _, record in iter_jsonl(out / PREDICTIONS)
    }
    report = evaluate(
        tasks, predictions, run_id=out.name, output_dir=out.parent, backend=backend, workers=workers, **options
    )
    resolved = link_grades(out)
    errors = dict(getattr(report, "errors", {}))
    for instance_id, error in sorted(errors.items()):
        log.warning("could not grade %s (infrastructure): %s", instance_id, error)
    return resolved, errors


def link_grades(out: str | os.PathLike) -> list[str]:
    """Set `grade` and `report_path` on each trajectory from instances/<id>/report.json.

    Returns the resolved instance ids. Rewrites trajectories.jsonl atomically.
    """
    import json

    out = Path(out)
    trajectories = read_trajectories(out / TRAJECTORIES)
    resolved = []
    for trajectory in trajectories:
        report = out / "instances" / trajectory.instance_id / "report.json"
        if not report.exists():
            continue
        data = json.loads(report.read_text())
        grade = Grade.model_validate(data.get(trajectory.instance_id, data))
        trajectory.grade = grade
        trajectory.report_path = str(report.relative_to(out))
        if grade.resolved:
            resolved.append(trajectory.instance_id)
    rewrite_trajectories(out / TRAJECTORIES, trajectories)
    return resolved


def infra_failures(out: str | os.PathLike) -> dict[str, str]:
    """The latest infrastructure error per instance still without a trajectory."""
    out = Path(out)
    path = out / INFRA_FAILURES
    if not path.exists():
        return {}
    finished = finished_instance_ids(out / TRAJECTORIES)
    failures = {record["instance_id"]: record.get("error", "") for _, record in iter_jsonl(path)}
    return {iid: error for iid, error in failures.items() if iid not in finished}


class _progress_bar:
    """A rich progress bar (or nothing), advanced once per finished task."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled = enabled
        self.total = total
        self.done = done
        self.progress = None

    def __enter__(self) -> Callable[[str, str], None]:
        if not self.enabled:
            return lambda instance_id, status: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]swerve run"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), transient=False,
        )
        self.progress.start()
        bar = self.progress.add_task("", total=self.total, completed=self.done)

        def advance(instance_id: str, status: str) -> None:
            self.progress.update(bar, advance=1, description=f"{instance_id}: {status}")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
