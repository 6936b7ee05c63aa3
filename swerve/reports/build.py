"""One call from run directories to scored tables (and optionally the HTML report):
what `swerve report` does, usable from Python and from the benchmark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from swerve.reports.html import TrajectoryPages, write_html_report
from swerve.reports.rundir import RunDir
from swerve.reports.scan import RunScan, scan_run
from swerve.reports.taskinfo import TaskInfo, load_task_infos
from swerve.reports.tables import all_tables


@dataclass
class Report:
    scans: list[RunScan]
    tables: dict[str, pd.DataFrame]
    html_path: Path | None = None

    @property
    def problem_count(self) -> int:
        return sum(len(scan.problems) for scan in self.scans)


def unique_run_names(runs: Sequence[RunDir]) -> list[str]:
    """Run names (run.json's run_id, else the folder name), made unique with -2, -3..."""
    names: list[str] = []
    for run in runs:
        name = run.name
        candidate, suffix = name, 2
        while candidate in names:
            candidate, suffix = f"{name}-{suffix}", suffix + 1
        names.append(candidate)
    return names


def build_report(
    run_dirs: Sequence[str | Path],
    *,
    tasks: str | Path | Mapping[str, TaskInfo] | None = None,
    html: str | Path | None = None,
    samples: int = 2000,
    seed: int = 0,
) -> Report:
    """Scan every run (streaming; trajectory pages are written as they pass when `html`
    is given), build all tables, and write the HTML report. The first run is the
    baseline of comparisons. Raises SwerveError only for unusable input (a path that
    is no run directory, a bad task file); problems inside runs are collected."""
    task_infos = load_task_infos(tasks) if isinstance(tasks, (str, Path)) else tasks
    runs = [RunDir(path) for path in run_dirs]
    names = unique_run_names(runs)
    pages = TrajectoryPages(html) if html is not None else None
    scans = [scan_run(run, task_infos, on_trajectory=pages, name=name) for run, name in zip(runs, names)]
    tables = all_tables(scans, samples=samples, seed=seed)
    html_path = None
    if html is not None:
        html_path = write_html_report(
            scans, html, links=pages.links if pages else None, samples=samples, seed=seed, tables=tables
        )
    return Report(scans=scans, tables=tables, html_path=html_path)
