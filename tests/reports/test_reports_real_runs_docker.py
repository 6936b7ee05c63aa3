"""`swerve report` with no --tasks on what `swerve run --evaluate` and `swerve eval` really write:
the run record names the task file, so repository and difficulty are known and gold patches found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerve.cli import app

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SMOKE = str(Path(__file__).parents[2] / "examples" / "smoke.jsonl")


def _report_without_tasks(run_dir: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["report", str(run_dir), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert "have no gold patch" not in shown.output
    payload = json.loads(shown.stdout)
    rows = payload["tasks"]
    assert len(rows) == 3
    assert {row["repo"] for row in rows} == {"pytoolz/toolz"}
    assert all(row["difficulty"] != "unknown" for row in rows), rows
    assert all(row["resolved"] for row in rows)


def test_report_finds_the_tasks_of_a_real_run_and_eval(docker_client, tmp_path):
    runner = CliRunner()
    out = tmp_path / "demo"
    ran = runner.invoke(app, ["run", "--tasks", SMOKE, "--policy", "oracle", "--evaluate", "--backend", "docker",
                              "--workers", "2", "--no-progress", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    record = json.loads((out / "run.json").read_text())
    assert record["record_version"] == 1 and record["kind"] == "run" and record["tasks"]["source"] == SMOKE
    assert record["policy"] == "oracle" and record["ended_at"] and "eval" in record["settings"]
    _report_without_tasks(out)

    graded = runner.invoke(app, ["eval", "--tasks", SMOKE, "--predictions", "gold", "--run-id", "gold",
                                 "--output", str(tmp_path / "evals"), "--backend", "docker", "--workers", "2"])
    assert graded.exit_code == 0, graded.output
    eval_dir = tmp_path / "evals" / "gold"
    record = json.loads((eval_dir / "run.json").read_text())
    assert record["kind"] == "eval" and record["tasks"]["sha256"] and record["tasks"]["count"] == 3
    _report_without_tasks(eval_dir)
