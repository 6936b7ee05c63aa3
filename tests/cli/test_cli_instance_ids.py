"""One `--instance-ids` (repeatable and comma-separated) on every command that selects instances;
`tasks validate`'s old `--instance-id` still works, hidden from --help."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from swerve.cli import app
from swerve.cli.options import merge_instance_ids

_PATCH = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"


@pytest.fixture()
def tasks_file(tmp_path):
    path = tmp_path / "tasks.jsonl"
    rows = [
        {"instance_id": name, "repo": "o/r", "problem_statement": "fix", "patch": _PATCH,
         "FAIL_TO_PASS": ["test_x.py::test_x"]}
        for name in ("alpha", "beta", "gamma")
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _commands(tasks, tmp_path):
    return {
        "eval": ["eval", "--tasks", tasks, "--predictions", "gold", "--run-id", "ids", "--output", str(tmp_path / "e")],
        "run": ["run", "--tasks", tasks, "--policy", "oracle", "--out", str(tmp_path / "r")],
        "teach": ["teach", "--tasks", tasks, "--policy", "oracle", "--out", str(tmp_path / "t")],
        "images build": ["images", "build", "--tasks", tasks],
        "tasks validate": ["tasks", "validate", tasks],
        "train rl": ["train", "rl", "--model", "tiny", "--tasks", tasks, "--out", str(tmp_path / "rl")],
    }


@pytest.mark.parametrize("command", ["eval", "run", "teach", "images build", "tasks validate", "train rl"])
def test_repeated_and_comma_separated_ids_select_the_same_way(command, tasks_file, tmp_path):
    # "alpha,nosuch" must split into two ids and the repeat must add "beta": only the unknown
    # id is named in the one-line error, which load_tasks raises before any environment starts
    args = _commands(str(tasks_file), tmp_path)[command]
    result = CliRunner().invoke(app, [*args, "--instance-ids", "alpha,nosuch", "--instance-ids", "beta"])
    assert result.exit_code == 2, result.output
    assert "no task with instance_id 'nosuch'" in result.output
    assert "alpha" not in result.output and "beta" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["eval", "run", "teach", "images build", "tasks validate", "train rl"])
def test_help_shows_the_one_spelling(command, tasks_file, tmp_path):
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--instance-ids" in result.output
    assert re.search(r"--instance-id\b(?!s)", result.output) is None


def test_tasks_validate_keeps_the_old_instance_id_spelling(tasks_file):
    result = CliRunner().invoke(app, ["tasks", "validate", str(tasks_file), "--instance-id", "nosuch",
                                      "--instance-ids", "alpha"])
    assert result.exit_code == 2, result.output
    assert "no task with instance_id 'nosuch'" in result.output
    assert "alpha" not in result.output


def test_merge_instance_ids():
    assert merge_instance_ids(None, None) is None
    assert merge_instance_ids(["a"], None, ["b", "c"]) == ["a", "b", "c"]
