"""Turn one run directory into per-instance metric rows, in a single streaming pass.

Trajectories are read one line at a time; each is measured, handed to an optional
callback (the HTML report writes its viewer page there) and dropped, so memory
holds the rows, not the trajectories. Instances with a report but no trajectory
(evaluation-only runs) and predictions without either are added afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swerve.errors import SwerveError
from swerve.reports.metrics import InstanceMetrics, instance_metrics, run_metrics
from swerve.reports.rundir import Problem, RunDir
from swerve.reports.taskinfo import TaskInfo, load_task_infos, repo_from_instance_id, task_info_from_row
from swerve.runrecord import RunRecordError, resolve_tasks_file
from swerve.schema import FailureClass, Trajectory

TrajectoryCallback = Callable[[Trajectory, InstanceMetrics, TaskInfo], None]


@dataclass
class RunScan:
    """Everything a report needs about one run."""

    name: str
    path: Path
    kind: str
    model: str
    manifest: dict[str, Any]
    summary: dict[str, Any] | None
    rows: list[InstanceMetrics] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        return run_metrics(self.rows)


def _tasks_named_by_run(run: RunDir) -> dict[str, TaskInfo]:
    """The tasks of the file run.json's record names (swerve.runrecord); {} for a dataset name or
    none. A file that is gone is a problem telling the user to pass --tasks."""
    record = run.record
    if record is None:
        return {}
    try:
        path = resolve_tasks_file(record, run.path)
    except RunRecordError as exc:
        run.problem(run.path / "run.json", str(exc))
        return {}
    if path is None:
        return {}
    try:
        return load_task_infos(path)
    except SwerveError as exc:
        run.problem(run.path / "run.json", f"tasks.source: {exc}; pass --tasks FILE")
        return {}


def _task_info(
    run: RunDir,
    instance_id: str,
    tasks: Mapping[str, TaskInfo],
    trajectory: Trajectory | None,
) -> TaskInfo:
    if instance_id in tasks:
        return tasks[instance_id]
    row = run.read_task_row(instance_id)
    if row is None and trajectory is not None and isinstance(trajectory.manifest.get("task"), dict):
        row = trajectory.manifest["task"]
    if row is not None:
        return task_info_from_row({"instance_id": instance_id, **row})
    return TaskInfo(instance_id=instance_id, repo=repo_from_instance_id(instance_id))


def _model_name(run: RunDir, trajectory: Trajectory | None) -> str:
    if run.model:
        return run.model
    if trajectory is not None:
        manifest = trajectory.manifest
        policy = manifest.get("policy") if isinstance(manifest.get("policy"), dict) else {}
        for value in (manifest.get("model"), policy.get("model"), policy.get("name"), manifest.get("policy_name")):
            if isinstance(value, str) and value:
                return value
    return ""


def scan_run(
    path: str | Path | RunDir,
    tasks: Mapping[str, TaskInfo] | None = None,
    on_trajectory: TrajectoryCallback | None = None,
    name: str | None = None,
) -> RunScan:
    """Measure every instance of the run at `path` (or of an open RunDir). Problems in
    the directory are collected in `RunScan.problems`; only a path that is no run
    directory raises."""
    run = path if isinstance(path, RunDir) else RunDir(path)
    scan = RunScan(
        name=name or run.name,
        path=run.path,
        kind=run.record.kind if run.record else ("run" if (run.path / "trajectories.jsonl").exists() else "eval"),
        model=run.model,
        manifest=run.manifest,
        summary=run.summary,
        problems=run.problems,
    )
    task_infos: Mapping[str, TaskInfo] = tasks if tasks is not None else _tasks_named_by_run(run)
    predictions = run.read_predictions()
    seen: set[str] = set()
    trajectories_path = run.path / "trajectories.jsonl"

    def measure(instance_id: str, trajectory: Trajectory | None) -> InstanceMetrics:
        info = _task_info(run, instance_id, task_infos, trajectory)
        grade = run.read_grade(instance_id)
        if grade is None and trajectory is not None:
            grade = trajectory.grade
        model_patch = run.read_patch(instance_id)
        if model_patch is None:
            model_patch = predictions.get(instance_id)
        row = instance_metrics(
            run=scan.name,
            instance_id=instance_id,
            trajectory=trajectory,
            grade=grade,
            model_patch=model_patch,
            gold_patch=info.gold_patch or None,
            base_files=run.read_base_files(instance_id),
            repo=info.repo,
            difficulty=info.difficulty,
            model=_model_name(run, trajectory),
        )
        for note in row.notes:
            run.problem(run.instance_dir(instance_id), note)
        if grade is None:
            error = run.read_infra_error(instance_id)
            if error is not None:
                row.failure_class = FailureClass.INFRA.value
                row.notes.append(f"not graded: {error}")
        scan.rows.append(row)
        if trajectory is not None and on_trajectory is not None:
            on_trajectory(trajectory, row, info)
        return row

    for trajectory in run.iter_trajectories():
        if trajectory.instance_id in seen:
            run.problem(trajectories_path, f"a second trajectory for {trajectory.instance_id}; only the first is scored")
            continue
        seen.add(trajectory.instance_id)
        measure(trajectory.instance_id, trajectory)

    for instance_id in [*run.instance_ids(), *predictions]:
        if instance_id not in seen:
            seen.add(instance_id)
            measure(instance_id, None)

    _check_against_summary(run, scan)
    _note_missing_inputs(run, scan)
    return scan


def _check_against_summary(run: RunDir, scan: RunScan) -> None:
    """summary.json and the per-instance reports should agree; say so when they do not."""
    if not scan.summary or not isinstance(scan.summary.get("resolved_ids"), list):
        return
    from_summary = set(scan.summary["resolved_ids"])
    from_reports = {row.instance_id for row in scan.rows if row.resolved}
    if from_summary != from_reports:
        only_summary = sorted(from_summary - from_reports)[:3]
        only_reports = sorted(from_reports - from_summary)[:3]
        run.problem(
            run.path / "summary.json",
            f"resolved_ids ({len(from_summary)}) disagree with instances/*/report.json ({len(from_reports)}); "
            f"only in summary: {only_summary}, only in reports: {only_reports}; the report uses report.json",
        )


def _note_missing_inputs(run: RunDir, scan: RunScan) -> None:
    """One line per kind of missing input, rather than one per instance."""
    no_gold = sum(1 for row in scan.rows if row.patch_similarity is None and not row.notes)
    if no_gold:
        run.problem(run.path, f"{no_gold} instance(s) have no gold patch: pass --tasks FILE for edit distance and patch similarity")
    no_base = sum(
        1 for row in scan.rows if row.patch_similarity is not None and row.edit_distance is None and not row.notes
    )
    if no_base:
        run.problem(run.path, f"{no_base} instance(s) have no instances/<id>/base_files.json: edit distance left empty")
    ungraded = sum(1 for row in scan.rows if not row.graded and not row.is_infra)
    if ungraded and (scan.kind == "eval" or (run.path / "instances").is_dir()):
        run.problem(run.path, f"{ungraded} instance(s) have no report.json: counted as ungraded, not as unresolved")
