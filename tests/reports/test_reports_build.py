"""build_report opens each run directory once; the runs table turned side by side."""

from __future__ import annotations

import pandas as pd

from swerve.reports.build import build_report
from swerve.reports.rundir import RunDir
from swerve.reports.scan import scan_run
from swerve.reports.tables import runs_side_by_side


def test_scan_run_takes_an_open_run_dir(two_runs):
    _, baseline, _ = two_runs
    run = RunDir(baseline)
    scan = scan_run(run)
    assert scan.problems is run.problems
    assert len(scan.rows) == len(scan_run(baseline).rows) == 30


def test_a_run_dir_twice_gets_unique_names_and_its_problems_once(two_runs):
    _, baseline, _ = two_runs
    (baseline / "run.json").unlink()
    report = build_report([baseline, baseline], samples=100)
    assert [scan.name for scan in report.scans] == ["baseline", "baseline-2"]
    for scan in report.scans:
        assert [str(p) for p in scan.problems].count(f"{baseline / 'run.json'}: missing") == 1


def test_runs_side_by_side_puts_runs_in_columns(two_runs):
    _, baseline, better = two_runs
    runs = build_report([baseline, better], samples=100).tables["runs"]
    frame = runs_side_by_side(runs)
    assert list(frame.columns) == ["metric", "baseline", "better"]
    assert frame.set_index("metric").loc["resolved_rate", "better"] == runs.set_index("run").loc["better", "resolved_rate"]
    empty = pd.DataFrame(columns=["run", "resolved_rate"])
    assert runs_side_by_side(empty).empty
