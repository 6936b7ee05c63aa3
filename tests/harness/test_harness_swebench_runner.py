"""A runner without JUnit, driven the way SWE-bench drives sympy and Django: the row's
eval_commands, then its test command with its test directives appended; the stored
test_output.txt is in the official shape and SWE-bench's grader re-grades it alike.
(Fake environment over the toolz fixture: real git, real processes, no Docker.)"""

from __future__ import annotations

import pytest
from harness_adversarial_cases import FREQ
from swebench_conformance import official_verdict

from swerve.harness.evaluate import evaluate
from swerve.harness.hidden_tests import pytest_targets, stdout_runner_script
from swerve.schema import Prediction, Task

MODULE = (
    "diff --git a/toolz/tests/test_env_case.py b/toolz/tests/test_env_case.py\nnew file mode 100644\n"
    "--- /dev/null\n+++ b/toolz/tests/test_env_case.py\n@@ -0,0 +1,12 @@\n"
    "+import os\n+import unittest\n+\n+from toolz import frequencies\n+\n+\n"
    "+class FrequenciesCase(unittest.TestCase):\n"
    "+    def test_counts_none(self):\n+        self.assertEqual(frequencies([None, 1, None]), {None: 2, 1: 1})\n"
    "+\n+    def test_eval_commands_ran(self):\n+        self.assertEqual(os.environ.get('SWERVE_PROBE'), 'set by eval_commands')\n"
)
NAME = "{0} (toolz.tests.test_env_case.FrequenciesCase.{0})"


def _task(base: Task) -> Task:
    return base.model_copy(update={
        "test_patch": MODULE,
        "test_cmd": "python -m unittest -v",
        "test_directives": ["toolz.tests.test_env_case"],
        "eval_commands": ["export SWERVE_PROBE='set by eval_commands'"],
        "log_parser": "parse_log_django",
        "FAIL_TO_PASS": [NAME.format("test_counts_none")],
        "PASS_TO_PASS": [NAME.format("test_eval_commands_ran")],
    })


def test_runner_script_appends_directives_after_eval_commands(toolz_tasks):
    task = _task(toolz_tasks[FREQ]).model_copy(update={"test_directives": ["a b.py", "c"]})
    script = stdout_runner_script(task, "/testbed")
    lines = script.splitlines()
    assert lines[1] == "export SWERVE_PROBE='set by eval_commands'"
    assert lines[-1] == "python -m unittest -v 'a b.py' c"
    assert pytest_targets(task) == ["a b.py", "c"]
    plain = toolz_tasks[FREQ]
    assert pytest_targets(plain) == ["toolz/tests/test_itertoolz.py"]


@pytest.mark.parametrize("kind", ["gold", "broken"])
def test_stdout_runner_grades_and_regrades_alike(kind, toolz_tasks, fake_opener, make_patch, tmp_path):
    task = _task(toolz_tasks[FREQ])
    patch = task.patch if kind == "gold" else make_patch(FREQ, edit={"toolz/itertoolz.py": ("d[item] += 1", "d[item] += 2")})
    report = evaluate([task], {FREQ: Prediction(instance_id=FREQ, model_patch=patch)}, run_id=kind, output_dir=tmp_path,
                      opener=fake_opener)
    grade = report.grades[FREQ]
    assert grade.test_source == "stdout:parse_log_django"
    assert grade.resolved is (kind == "gold"), (grade.failure_reason, grade.test_statuses)
    assert grade.test_statuses[NAME.format("test_eval_commands_ran")].value == "PASSED"
    instance_dir = tmp_path / kind / "instances" / FREQ
    assert "python -m unittest -v toolz.tests.test_env_case" in (instance_dir / "eval.sh").read_text()
    log = (instance_dir / "test_output.txt").read_text()
    assert log.count(">>>>> Start Test Output") == 1 and f">>>>> Test Exit Code: {grade.test_exit_code}" in log
    theirs, status_map = official_verdict(task, instance_dir / "test_output.txt")
    assert theirs is grade.resolved
    assert status_map[NAME.format("test_eval_commands_ran")] == "PASSED"
