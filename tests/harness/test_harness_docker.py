"""The evaluator in real containers on the toolz fixture tasks: gold resolves all,
empty resolves none, and every hostile prediction comes out not resolved, with a
reason, while the other instances of the same run finish normally."""

from __future__ import annotations

import json

import pytest
from harness_adversarial_cases import FREQ, cases, gold_plus_test_edit, instance_tasks

from swerve.harness.evaluate import evaluate
from swerve.harness.tasks import load_predictions
from swerve.schema import FailureClass, Prediction

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def docker_opener(docker_client, toolz_tasks):
    """Real docker environments; hostile copies of a fixture task reuse its image."""
    from swerve.environments import open_environment

    def opener(task, backend, limits, run_id):
        return open_environment(toolz_tasks[task.instance_id.split("--")[0]], "docker", limits, run_id)

    return opener


def _leftover_containers(docker_client, run_id):
    return docker_client.containers.list(all=True, filters={"label": f"swerve.run={run_id}"})


def test_gold_and_empty_in_docker(docker_client, toolz_tasks, tmp_path):
    tasks = list(toolz_tasks.values())
    gold = evaluate(tasks, load_predictions("gold", tasks), run_id="dk-gold", output_dir=tmp_path, backend="docker", workers=2)
    assert gold.errors == {}
    assert gold.summary["resolved_instances"] == 3, {i: g.failure_reason for i, g in gold.grades.items()}
    empty = evaluate(tasks, load_predictions("empty", tasks), run_id="dk-empty", output_dir=tmp_path, backend="docker")
    assert empty.summary["resolved_instances"] == 0 and empty.summary["empty_patch_instances"] == 3
    report = json.loads((tmp_path / "dk-gold" / "instances" / FREQ / "report.json").read_text())[FREQ]
    assert report["tests_status"]["FAIL_TO_PASS"]["success"] == toolz_tasks[FREQ].FAIL_TO_PASS
    assert not _leftover_containers(docker_client, "dk-gold")


def test_hostile_predictions_in_docker(docker_client, toolz_tasks, docker_opener, make_patch, tmp_path):
    case_list = cases()
    tasks = instance_tasks(toolz_tasks, case_list)
    predictions = {t.instance_id: Prediction(instance_id=t.instance_id, model_patch=c.build(make_patch))
                   for t, c in zip(tasks, case_list)}
    gold_task = toolz_tasks[FREQ].model_copy(update={"instance_id": f"{FREQ}--gold-plus-test-edit"})
    tasks.append(gold_task)
    predictions[gold_task.instance_id] = Prediction(instance_id=gold_task.instance_id,
                                                    model_patch=gold_plus_test_edit(make_patch, gold_task.patch))

    report = evaluate(tasks, predictions, run_id="dk-hostile", output_dir=tmp_path, opener=docker_opener,
                      workers=2, timeout=30)

    assert report.errors == {}
    problems = []
    for task, case in zip(tasks, case_list):
        grade = report.grades[task.instance_id]
        if grade.resolved or grade.failure_class not in case.failure_classes or not grade.failure_reason:
            problems.append(f"{case.name}: resolved={grade.resolved} {grade.failure_class} {grade.failure_reason!r}")
        missing = [flag for flag in case.flags if flag not in grade.tamper_flags]
        if missing:
            problems.append(f"{case.name}: flags {missing} missing from {grade.tamper_flags}")
    assert not problems, "\n".join(problems)
    assert report.grades[gold_task.instance_id].resolved
    assert report.grades[f"{FREQ}--hangs"].failure_class is FailureClass.TIMEOUT
    assert not _leftover_containers(docker_client, "dk-hostile")
