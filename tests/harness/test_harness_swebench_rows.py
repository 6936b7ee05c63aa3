"""SWE-bench 5.x rows (image / eval_script / log_parser): the row's own eval script
runs, its output is parsed with its own parser between nonce-carrying markers, so
a patch that prints a fake end marker and fake PASSED lines gains nothing."""

from __future__ import annotations

import pytest
from harness_adversarial_cases import FREQ, INIT_ANCHOR

from swerve.harness.evaluate import evaluate
from swerve.schema import FailureClass, Prediction

FORGED_END = '''import atexit as _atexit


def _forge():
    print(">>>>> End Test Output")
    print("PASSED toolz/tests/test_itertoolz.py::test_frequencies_counts_none", flush=True)


_atexit.register(_forge)
'''


def swebench_style_eval_script(task, workdir: str | None) -> str:
    test_file = "toolz/tests/test_itertoolz.py"
    cd = f"cd {workdir}\n" if workdir else ""
    return (
        "#!/bin/bash\nset -uxo pipefail\n" + cd +
        f"git checkout HEAD {test_file}\n"
        "git apply -v - <<'EOF_114329324912'\n" + task.test_patch + "EOF_114329324912\n"
        ": '>>>>> Start Test Output'\n"
        f"python -m pytest -rA -p no:cacheprovider {test_file}\n"
        ": '>>>>> End Test Output'\n"
        f"git checkout HEAD {test_file}\n"
    )


def _row(task, **update):
    return task.model_copy(update={"log_parser": "parse_log_pytest", "eval_type": "pass_and_fail", **update})


def _predictions(task, make_patch):
    forged = make_patch(FREQ, edit={"toolz/__init__.py": (INIT_ANCHOR, FORGED_END + INIT_ANCHOR)})
    return {
        "gold": Prediction(instance_id=task.instance_id, model_patch=task.patch),
        "forged": Prediction(instance_id=task.instance_id, model_patch=forged),
    }


@pytest.mark.parametrize("kind", ["gold", "forged"])
def test_eval_script_rows_in_fake_environment(kind, toolz_tasks, fake_opener, make_patch, tmp_path):
    task = _row(toolz_tasks[FREQ], eval_script=swebench_style_eval_script(toolz_tasks[FREQ], None))
    prediction = _predictions(task, make_patch)[kind]
    report = evaluate([task], {task.instance_id: prediction}, run_id=kind, output_dir=tmp_path, opener=fake_opener)
    grade = report.grades[task.instance_id]
    assert grade.test_source == "stdout:parse_log_pytest"
    if kind == "gold":
        assert grade.resolved, grade.failure_reason
    else:
        assert not grade.resolved
        assert grade.failure_class is FailureClass.TESTS_FAILED
        assert "conflicting_results_in_output" in grade.tamper_flags


@pytest.mark.docker
@pytest.mark.slow
def test_published_image_is_used_when_present_locally(docker_client, toolz_tasks, make_patch, tmp_path):
    """A locally built image stands in for a published SWE-bench instance image; the row runs
    in swerve's tier derived from it."""
    import io

    from swerve.environments.images import ensure_instance_image

    base = toolz_tasks[FREQ]
    instance_image = ensure_instance_image(base, client=docker_client).tag
    tag = "swerve-standin/sweb.eval.x86_64.pytoolz__toolz-frequencies-none:latest"
    dockerfile = f"FROM {instance_image}\nLABEL swerve.test=standin\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    try:
        task = _row(base, image=tag, eval_script=swebench_style_eval_script(base, "/testbed"))
        predictions = _predictions(task, make_patch)
        for kind, prediction in predictions.items():
            report = evaluate([task], {task.instance_id: prediction}, run_id=f"standin-{kind}", output_dir=tmp_path,
                              backend="docker")
            assert report.errors == {}
            grade = report.grades[task.instance_id]
            derived = grade.environment["image"]
            assert derived.startswith("swerve-official:")
            assert docker_client.images.get(tag).id in docker_client.images.get(derived).labels["swerve.origin"]
            assert grade.resolved is (kind == "gold"), grade.failure_reason
    finally:
        for image in docker_client.images.list(filters={"label": f"swerve.task={base.instance_id}"}):
            if image.labels.get("swerve.tier") == "official":
                docker_client.images.remove(image.id, force=True)
        docker_client.images.remove(tag, force=True)
