"""The success paths of `swerve eval` and `swerve tasks validate` from the command line,
on a real repository and the real evaluator, through the scratch backend (no Docker)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from agents_fake_env import CALC_SOURCE, GOLD_PATCH, make_repo  # noqa: E402

from swerve.cli import app  # noqa: E402
from swerve.schema import Task  # noqa: E402

TEST_PATCH = '''diff --git a/test_add.py b/test_add.py
new file mode 100644
--- /dev/null
+++ b/test_add.py
@@ -0,0 +1,5 @@
+from calc import add
+
+
+def test_add():
+    assert add(2, 3) == 5
'''
MUL_TEST = "from calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"


def _task(repo: Path, instance_id: str, **changes) -> Task:
    fields = dict(instance_id=instance_id, repo="fake/calc", repo_source=str(repo), patch=GOLD_PATCH,
                  test_patch=TEST_PATCH, problem_statement="add(2, 3) returns -1 instead of 5.", FAIL_TO_PASS=["test_add.py::test_add"],
                  PASS_TO_PASS=["test_mul.py::test_mul"], test_cmd=f"{sys.executable} -m pytest -q -p no:cacheprovider")
    return Task(**{**fields, **changes})


@pytest.fixture()
def tasks_file(tmp_path):
    repo = make_repo(tmp_path / "calc", {"calc.py": CALC_SOURCE, "test_mul.py": MUL_TEST})
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(_task(repo, "fake__calc-1").model_dump(mode="json")) + "\n")
    return path, repo


def test_eval_of_gold_patches_exits_0_and_writes_the_run(tmp_path, tasks_file):
    tasks, _ = tasks_file
    result = CliRunner().invoke(app, ["eval", "--tasks", str(tasks), "--predictions", "gold", "--backend", "scratch",
                                      "--run-id", "gold", "--output", str(tmp_path / "runs"), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "runs" / "gold" / "summary.json").read_text())
    assert summary["resolved_instances"] == 1 and summary["error_ids"] == []
    report = json.loads((tmp_path / "runs" / "gold" / "instances" / "fake__calc-1" / "report.json").read_text())
    assert report["fake__calc-1"]["resolved"] is True
    record = json.loads((tmp_path / "runs" / "gold" / "run.json").read_text())
    assert record["kind"] == "eval" and record["tasks"]["count"] == 1


def test_tasks_validate_exits_0_for_a_valid_task_and_1_for_an_invalid_one(tmp_path, tasks_file):
    tasks, repo = tasks_file
    result = CliRunner().invoke(app, ["tasks", "validate", str(tasks), "--backend", "scratch", "--timeout", "120"])
    assert result.exit_code == 0, result.output
    assert "[1/1] fake__calc-1" in result.output and "1 of 1 task(s) valid" in result.output

    already_passing = _task(repo, "fake__calc-2", FAIL_TO_PASS=["test_mul.py::test_mul"], PASS_TO_PASS=[])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(already_passing.model_dump(mode="json")) + "\n")
    result = CliRunner().invoke(app, ["tasks", "validate", str(bad), "--backend", "scratch", "--timeout", "120"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "0 of 1 task(s) valid" in result.output
