"""`swerve run` / `swerve teach`: bad input is one clear error line, never a traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from swerve.cli import app


@pytest.fixture()
def task_file(tmp_path):
    from agents_fake_env import calc_task

    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(calc_task().model_dump(mode="json")) + "\n")
    return path


def invoke(*args):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})


def test_help_lists_every_option():
    result = invoke("run", "--help")
    assert result.exit_code == 0
    for option in ("--tasks", "--policy", "--workers", "--out", "--evaluate", "--backend", "--max-steps",
                   "--max-tokens", "--time-limit", "--command-timeout", "--max-format-errors", "--max-repeats",
                   "--observation-bytes", "--keep-malformed"):
        assert option in result.output
    assert invoke("teach", "--help").exit_code == 0


def test_missing_task_file(tmp_path):
    result = invoke("run", "--tasks", str(tmp_path / "nope.jsonl"), "--policy", "noop", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "error:" in result.output and "nope.jsonl" in result.output and "Traceback" not in result.output


def test_unknown_policy(task_file, tmp_path):
    result = invoke("run", "--tasks", str(task_file), "--policy", "telepathy", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "telepathy" in result.output


def test_replay_of_a_missing_file(task_file, tmp_path):
    result = invoke("run", "--tasks", str(task_file), "--policy", f"replay:{tmp_path}/none.jsonl",
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "does not exist" in result.output
