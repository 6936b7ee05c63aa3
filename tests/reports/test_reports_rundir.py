"""Malformed and partial run directories: the file and line at fault are reported and
everything else is still scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swerve.reports.rundir import RunDir, RunDirError
from swerve.reports.scan import scan_run
from swerve.reports.synthetic import synthetic_tasks, write_synthetic_run
from swerve.reports.taskinfo import difficulty_label, load_task_infos, repo_from_instance_id


def _run(tmp_path: Path, count: int = 6, **kwargs) -> Path:
    return write_synthetic_run(tmp_path / "run", synthetic_tasks(count, seed=3), seed=5, **kwargs)


def test_a_clean_run_has_no_problems_and_agrees_with_its_summary(two_runs):
    tasks_file, baseline, _ = two_runs
    scan = scan_run(baseline, load_task_infos(tasks_file))
    assert scan.problems == []
    assert len(scan.rows) == 30
    summary = json.loads((baseline / "summary.json").read_text())
    assert sum(1 for row in scan.rows if row.resolved) == summary["resolved_instances"]
    assert all(row.edit_distance is not None for row in scan.rows)


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_is_scored(tmp_path):
    run = _run(tmp_path)
    path = run / "trajectories.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # line 2 is not JSON, line 4 is JSON but not a trajectory, and the file ends in a torn line
    lines[1] = "{not json\n"
    lines[3] = json.dumps({"instance_id": lines and "x", "steps": "nope"}) + "\n"
    path.write_text("".join(lines) + '{"instance_id": "half')
    scan = scan_run(run)
    messages = [str(problem) for problem in scan.problems]
    assert any(m.startswith(f"{path}:2: not valid JSON") for m in messages), messages
    assert any(m.startswith(f"{path}:4: not a trajectory: field steps") for m in messages), messages
    assert any(m.startswith(f"{path}:7: torn last line") for m in messages), messages
    # 4 good trajectories; the 2 bad ones still have reports on disk, so all 6 instances get rows
    assert sum(1 for row in scan.rows if row.has_trajectory) == 4
    assert len(scan.rows) == 6


def test_bad_instance_files_and_missing_manifest_are_reported(tmp_path):
    run = _run(tmp_path)
    ids = sorted(p.name for p in (run / "instances").iterdir())
    (run / "instances" / ids[0] / "report.json").write_text("{oops")
    (run / "instances" / ids[1] / "base_files.json").write_text(json.dumps({"src/x.py": 3}))
    (run / "instances" / ids[2] / "report.json").write_text(json.dumps({ids[2]: {"resolved": "perhaps"}}))
    (run / "run.json").unlink()
    scan = scan_run(run)
    text = "\n".join(str(problem) for problem in scan.problems)
    assert f"{run / 'run.json'}: missing" in text
    assert f"{ids[0]}/report.json: not valid JSON" in text
    assert f"{ids[1]}/base_files.json: values must be file text or null" in text
    assert f"{ids[2]}/report.json: not a grade: field resolved" in text
    assert len(scan.rows) == 6
    by_id = {row.instance_id: row for row in scan.rows}
    # the trajectory carries its own grade, used when report.json is unreadable
    assert by_id[ids[0]].graded
    assert scan.name == "run"  # no run.json: the directory name


def test_summary_that_disagrees_with_reports_is_flagged(tmp_path):
    run = _run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary["resolved_ids"] = ["made-up-id"]
    (run / "summary.json").write_text(json.dumps(summary))
    scan = scan_run(run)
    assert any("resolved_ids" in problem.message and "made-up-id" in problem.message for problem in scan.problems)


def test_eval_only_run_without_trajectories(tmp_path):
    run = _run(tmp_path, with_trajectories=False)
    scan = scan_run(run)
    assert scan.kind == "eval"
    assert len(scan.rows) == 6
    assert all(not row.has_trajectory and row.graded for row in scan.rows)
    assert all(row.steps is None for row in scan.rows)


def test_not_a_run_directory_is_one_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="not a directory"):
        RunDir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not its parent"):
        RunDir(tmp_path / "empty")


def test_task_info_helpers():
    assert repo_from_instance_id("django__django-11099") == "django/django"
    assert repo_from_instance_id("scikit-learn__scikit-learn-10297") == "scikit-learn/scikit-learn"
    assert repo_from_instance_id("no-convention") == ""
    assert difficulty_label("15 min - 1 hour") == "15 min - 1 hour"
    assert difficulty_label({"label": "hard", "score": 3}) == "hard"
    assert difficulty_label({"files": 2}) == "files=2"
    assert difficulty_label({}) == "unknown"


def test_swebench_reports_and_evaluator_infra_errors(tmp_path):
    """A report.json as SWE-bench writes it (no swerve fields) is scored with an inferred
    failure class; error.json (the evaluator gave up after infra retries) is an infra failure."""
    run = tmp_path / "eval-run"
    (run / "instances" / "o__r-1").mkdir(parents=True)
    (run / "instances" / "o__r-2").mkdir(parents=True)
    (run / "instances" / "o__r-3").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "eval-run", "kind": "eval", "settings": {}}))
    swebench_report = {
        "patch_is_None": False, "patch_exists": True, "patch_successfully_applied": True, "resolved": False,
        "tests_status": {"FAIL_TO_PASS": {"success": [], "failure": ["t"]}, "PASS_TO_PASS": {"success": ["p"], "failure": []}},
    }  # fmt: skip
    (run / "instances" / "o__r-1" / "report.json").write_text(json.dumps({"o__r-1": swebench_report}))
    not_applied = {**swebench_report, "patch_successfully_applied": False, "tests_status": {}}
    (run / "instances" / "o__r-2" / "report.json").write_text(json.dumps({"o__r-2": not_applied}))
    (run / "instances" / "o__r-3" / "error.json").write_text(json.dumps({"instance_id": "o__r-3", "error": "infra: daemon"}))
    scan = scan_run(run)
    by_id = {row.instance_id: row for row in scan.rows}
    assert by_id["o__r-1"].failure_class == "tests_failed"
    assert by_id["o__r-2"].failure_class == "apply_failed"
    assert by_id["o__r-3"].failure_class == "infra" and not by_id["o__r-3"].graded
    assert by_id["o__r-1"].repo == "o/r"
    metrics = scan.metrics
    assert (metrics["scored"], metrics["infra_failures"], metrics["ungraded"]) == (2, 1, 0)
    assert metrics["resolved_rate"] == 0.0
