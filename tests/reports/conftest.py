"""Synthetic run directories in the agreed layout (no containers needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swerve.reports.synthetic import synthetic_tasks, write_synthetic_run, write_tasks


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(tasks file, baseline run, better run) over the same 30 synthetic tasks."""
    tasks = synthetic_tasks(30, seed=7)
    tasks_file = write_tasks(tmp_path / "tasks.jsonl", tasks)
    baseline = write_synthetic_run(tmp_path / "baseline", tasks, seed=1, resolve_rate=0.3, model="small-model")
    better = write_synthetic_run(tmp_path / "better", tasks, seed=2, resolve_rate=0.7, model="big-model")
    return tasks_file, baseline, better
