"""A Django task for real: Django 5.0.14's sdist (it ships tests/ and tests/runtests.py)
with the fix for ticket 35172 reverted by a base patch, graded through Django's own
runner and SWE-bench's Django parser, in Docker on the host's Python (3.11, as
SWE-bench's django 5.0 spec names). Gold resolves; empty and a no-op do not; the
official grader reading swerve's stored log agrees on each."""

from __future__ import annotations

from pathlib import Path

import pytest
from swebench_conformance import official_verdict, readme_noop_patch

from swerve.harness.evaluate import evaluate
from swerve.harness.tasks import load_tasks
from swerve.schema import FailureClass, Prediction

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django.jsonl"
F2P = "test_intcomma (humanize_tests.tests.HumanizeTests.test_intcomma)"


def test_django_task_grades_through_runtests_and_the_django_parser(docker_client, tmp_path):
    [task] = load_tasks(EXAMPLE)
    assert task.FAIL_TO_PASS == [F2P] and len(task.PASS_TO_PASS) == 14
    predictions = {
        "gold": task.patch,
        "empty": "",
        "noop": readme_noop_patch("======"),
    }
    verdicts = {}
    for kind, patch in predictions.items():
        report = evaluate([task], {task.instance_id: Prediction(instance_id=task.instance_id, model_patch=patch)},
                          run_id=f"django-{kind}", output_dir=tmp_path, backend="docker")
        assert report.errors == {}, report.errors
        grade = report.grades[task.instance_id]
        verdicts[kind] = grade.resolved
        instance_dir = tmp_path / f"django-{kind}" / "instances" / task.instance_id
        if kind == "empty":
            assert grade.failure_class is FailureClass.EMPTY_PATCH
            continue
        assert grade.test_source == "stdout:parse_log_django", grade.failure_reason
        assert grade.environment["python"] == "3.11"
        script = (instance_dir / "eval.sh").read_text()
        assert "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 humanize_tests.tests" in script
        theirs, status_map = official_verdict(task, instance_dir / "test_output.txt")
        assert theirs is grade.resolved, (kind, status_map)
        if kind == "gold":
            assert set(grade.tests_status["PASS_TO_PASS"]["success"]) == set(task.PASS_TO_PASS)
            assert status_map[F2P] == "PASSED"
        else:
            assert grade.failure_class is FailureClass.TESTS_FAILED
            assert grade.tests_status["FAIL_TO_PASS"]["failure"] == [F2P]
            assert grade.tests_status["PASS_TO_PASS"]["failure"] == []
            assert F2P not in status_map or status_map[F2P] != "PASSED"
    assert verdicts == {"gold": True, "empty": False, "noop": False}
