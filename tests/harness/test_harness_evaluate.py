"""The evaluator end to end on the real toolz fixture tasks, in fake environments
(bash in a temp clone): gold resolves all, empty resolves none, hostile patches
never resolve and say why, infra failures are retried and never the model's
result, and a re-run resumes."""

from __future__ import annotations

import json

import pytest
from harness_adversarial_cases import DISSOC, FREQ, cases, gold_plus_test_edit, instance_tasks

from swerve.errors import InfraError
from swerve.harness.evaluate import evaluate, patch_key
from swerve.harness.tasks import load_predictions
from swerve.schema import FailureClass, Prediction


def test_gold_resolves_every_fixture_task_and_writes_the_run_layout(toolz_tasks, fake_opener, tmp_path):
    tasks = list(toolz_tasks.values())
    report = evaluate(tasks, load_predictions("gold", tasks), run_id="gold", output_dir=tmp_path, opener=fake_opener, workers=2)
    assert report.summary["resolved_instances"] == 3
    assert report.summary["resolved_ids"] == sorted(toolz_tasks)
    assert report.summary["error_instances"] == 0
    run_dir = tmp_path / "gold"
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["run_id"] == "gold" and manifest["kind"] == "eval"
    assert json.loads((run_dir / "summary.json").read_text())["resolved_instances"] == 3
    for instance_id, task in toolz_tasks.items():
        folder = run_dir / "instances" / instance_id
        grade = json.loads((folder / "report.json").read_text())[instance_id]
        assert grade["resolved"] and grade["patch_successfully_applied"] and grade["apply_method"] == "git apply"
        assert grade["tests_status"]["FAIL_TO_PASS"]["success"] == task.FAIL_TO_PASS
        assert grade["tests_status"]["PASS_TO_PASS"]["failure"] == []
        assert (folder / "patch.diff").read_text() == task.patch
        assert "--junitxml=/tmp/swerve-results-" in (folder / "eval.sh").read_text()
        assert "passed" in (folder / "test_output.txt").read_text()
        base_files = json.loads((folder / "base_files.json").read_text())
        assert set(base_files) and all(text is not None for text in base_files.values())
    assert all(env.closed for env in fake_opener.opened)


def test_empty_predictions_resolve_nothing_and_are_empty_patch(toolz_tasks, fake_opener, tmp_path):
    tasks = list(toolz_tasks.values())
    report = evaluate(tasks, load_predictions("empty", tasks), run_id="empty", output_dir=tmp_path, opener=fake_opener)
    assert report.summary["resolved_instances"] == 0
    assert report.summary["empty_patch_instances"] == 3
    assert report.summary["empty_patch_ids"] == sorted(toolz_tasks)
    assert {g.failure_class for g in report.grades.values()} == {FailureClass.EMPTY_PATCH}


def test_hostile_predictions_never_resolve_and_say_why(toolz_tasks, fake_opener, make_patch, tmp_path):
    case_list = cases()
    tasks = instance_tasks(toolz_tasks, case_list)
    predictions = {}
    for task, case in zip(tasks, case_list):
        predictions[task.instance_id] = Prediction(instance_id=task.instance_id, model_patch=case.build(make_patch))
    gold_task = toolz_tasks[FREQ].model_copy(update={"instance_id": f"{FREQ}--gold-plus-test-edit"})
    tasks.append(gold_task)
    predictions[gold_task.instance_id] = Prediction(instance_id=gold_task.instance_id,
                                                    model_patch=gold_plus_test_edit(make_patch, gold_task.patch))

    report = evaluate(tasks, predictions, run_id="hostile", output_dir=tmp_path, opener=fake_opener, workers=2, timeout=20)

    assert report.errors == {}
    assert len(report.grades) == len(tasks)
    problems = []
    for task, case in zip(tasks, case_list):
        grade = report.grades[task.instance_id]
        if grade.resolved:
            problems.append(f"{case.name}: RESOLVED")
        if grade.failure_class not in case.failure_classes:
            problems.append(f"{case.name}: {grade.failure_class} not in {case.failure_classes} ({grade.failure_reason})")
        missing = [flag for flag in case.flags if flag not in grade.tamper_flags]
        if missing:
            problems.append(f"{case.name}: flags {missing} missing from {grade.tamper_flags}")
        if not grade.failure_reason:
            problems.append(f"{case.name}: no reason")
        if case.reason_contains and case.reason_contains not in grade.failure_reason:
            problems.append(f"{case.name}: reason {grade.failure_reason!r} lacks {case.reason_contains!r}")
    assert not problems, "\n".join(problems)
    refused = tmp_path / "hostile" / "instances" / f"{DISSOC}--dotdot-path"
    assert list(json.loads((refused / "base_files.json").read_text())) == ["toolz/dicttoolz.py"]
    flagged_gold = report.grades[gold_task.instance_id]
    assert flagged_gold.resolved
    assert flagged_gold.tests_touched == ["toolz/tests/test_extra_model.py"]
    assert "tests_touched" in flagged_gold.tamper_flags


def test_infra_failures_are_retried_and_never_the_models_result(toolz_tasks, fake_opener, tmp_path):
    tasks = list(toolz_tasks.values())
    calls = {"n": 0}

    def flaky_opener(task, backend, limits, run_id):
        if task.instance_id == FREQ:
            calls["n"] += 1
            if calls["n"] < 2:
                raise InfraError("daemon hiccup")
        if task.instance_id.startswith("pytoolz__toolz-get_in"):
            raise InfraError("image build failed")
        return fake_opener(task, backend, limits, run_id)

    report = evaluate(tasks, load_predictions("gold", tasks), run_id="infra", output_dir=tmp_path,
                      opener=flaky_opener, infra_attempts=2)
    assert report.grades[FREQ].resolved
    assert "pytoolz__toolz-get_in-index" not in report.grades
    assert "image build failed" in report.errors["pytoolz__toolz-get_in-index"]
    assert report.summary["error_ids"] == ["pytoolz__toolz-get_in-index"]
    folder = tmp_path / "infra" / "instances" / "pytoolz__toolz-get_in-index"
    assert not (folder / "report.json").exists()
    assert json.loads((folder / "error.json").read_text())["error"].startswith("infra:")


def test_rerun_resumes_same_patches_and_regrades_changed_ones(toolz_tasks, fake_opener, tmp_path):
    tasks = list(toolz_tasks.values())
    gold = load_predictions("gold", tasks)
    first = evaluate(tasks, gold, run_id="resume", output_dir=tmp_path, opener=fake_opener)
    assert first.skipped == [] and first.summary["resolved_instances"] == 3
    opened_before = len(fake_opener.opened)

    changed = dict(gold)
    changed[FREQ] = Prediction(instance_id=FREQ, model_patch="")
    second = evaluate(tasks, changed, run_id="resume", output_dir=tmp_path, opener=fake_opener)
    assert sorted(second.skipped) == sorted(i for i in toolz_tasks if i != FREQ)
    assert second.grades[FREQ].failure_class is FailureClass.EMPTY_PATCH
    assert second.summary["resolved_instances"] == 2
    assert len(fake_opener.opened) - opened_before == 1  # only the changed one (base files for the empty patch)
    assert second.grades[FREQ].patch_hash == patch_key(toolz_tasks[FREQ], "")


def test_unknown_instance_ids_are_a_clear_error(toolz_tasks, fake_opener, tmp_path):
    with pytest.raises(ValueError, match="nope"):
        evaluate(list(toolz_tasks.values()), {}, run_id="x", output_dir=tmp_path, opener=fake_opener, instance_ids=["nope"])


def test_ctrl_c_leaves_a_resumable_run(toolz_tasks, fake_opener, tmp_path):
    import os
    import signal

    tasks = list(toolz_tasks.values())
    gold = load_predictions("gold", tasks)
    import itertools
    import threading

    counter = itertools.count(1)
    guard = threading.Lock()

    def interrupting_opener(task, backend, limits, run_id):
        with guard:
            call = next(counter)
        env = fake_opener(task, backend, limits, run_id)
        if call == 3:  # task 3 being prefetched: interrupt once task 1 is written (task 2 is under way)
            import time

            deadline = time.monotonic() + 120
            while not list((tmp_path / "ctrl-c" / "instances").glob("*/report.json")):
                assert time.monotonic() < deadline, "the first task was never written"
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        return env

    with pytest.raises(KeyboardInterrupt):
        evaluate(tasks, gold, run_id="ctrl-c", output_dir=tmp_path, opener=interrupting_opener, workers=1)
    summary = json.loads((tmp_path / "ctrl-c" / "summary.json").read_text())
    assert summary["interrupted"] is True
    finished = summary["completed_ids"]
    assert len(finished) == 1 and summary["error_ids"] == []
    assert all(env.closed for env in fake_opener.opened)

    resumed = evaluate(tasks, gold, run_id="ctrl-c", output_dir=tmp_path, opener=fake_opener, workers=1)
    assert resumed.skipped == finished
    assert resumed.summary["resolved_instances"] == 3


def test_reruns_mark_flaky_tests_instead_of_silently_flipping(toolz_tasks, fake_opener, tmp_path):
    import uuid

    marker = f"/tmp/swerve-flaky-{uuid.uuid4().hex}"
    flaky_file = (
        "diff --git a/toolz/tests/test_flaky.py b/toolz/tests/test_flaky.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/toolz/tests/test_flaky.py\n@@ -0,0 +1,7 @@\n"
        "+import os\n+\n+\n+def test_flaky():\n"
        f"+    if not os.path.exists({marker!r}):\n"
        f"+        open({marker!r}, 'w').close()\n"
        "+        assert False, 'first run fails'\n"
    )
    base = toolz_tasks[FREQ]
    flaky_test = "toolz/tests/test_flaky.py::test_flaky"
    task = base.model_copy(update={"test_patch": base.test_patch + flaky_file,
                                   "FAIL_TO_PASS": [*base.FAIL_TO_PASS, flaky_test]})
    prediction = {FREQ: Prediction(instance_id=FREQ, model_patch=task.patch)}
    try:
        strict = evaluate([task], prediction, run_id="no-reruns", output_dir=tmp_path, opener=fake_opener)
        assert not strict.grades[FREQ].resolved
        assert strict.grades[FREQ].tests_status["FAIL_TO_PASS"]["failure"] == [flaky_test]
        import os

        os.unlink(marker)
        lenient = evaluate([task], prediction, run_id="reruns", output_dir=tmp_path, opener=fake_opener, reruns=2)
        grade = lenient.grades[FREQ]
        assert grade.resolved and grade.flaky_tests == [flaky_test]
        assert lenient.summary["flaky_ids"] == [FREQ]
        assert "swerve re-run 1" in (tmp_path / "reruns" / "instances" / FREQ / "test_output.txt").read_text()
    finally:
        import os

        if os.path.exists(marker):
            os.unlink(marker)


UNITTEST_MODULE = (
    "diff --git a/toolz/tests/test_unit_case.py b/toolz/tests/test_unit_case.py\nnew file mode 100644\n"
    "--- /dev/null\n+++ b/toolz/tests/test_unit_case.py\n@@ -0,0 +1,10 @@\n"
    "+import unittest\n+\n+from toolz import frequencies\n+\n+\n"
    "+class FrequenciesCase(unittest.TestCase):\n"
    "+    def test_counts_none(self):\n+        self.assertEqual(frequencies([None, 1, None]), {None: 2, 1: 1})\n"
    "+\n+    def test_counts_ints(self):\n"
)


def test_non_pytest_runner_is_parsed_from_stdout_between_nonce_markers(toolz_tasks, fake_opener, make_patch, tmp_path):
    base = toolz_tasks[FREQ]
    module = UNITTEST_MODULE.replace("@@ -0,0 +1,10 @@", "@@ -0,0 +1,11 @@") + "+        self.assertEqual(frequencies([1, 1]), {1: 2})\n"
    name = "{0} (toolz.tests.test_unit_case.FrequenciesCase.{0})"
    task = base.model_copy(update={
        "test_patch": module, "test_cmd": "python -m unittest -v toolz.tests.test_unit_case",
        "FAIL_TO_PASS": [name.format("test_counts_none")], "PASS_TO_PASS": [name.format("test_counts_ints")],
    })
    broken = make_patch(FREQ, edit={"toolz/itertoolz.py": ("d[item] += 1", "d[item] += 2")})
    for kind, patch in (("gold", task.patch), ("broken", broken)):
        predictions = {FREQ: Prediction(instance_id=FREQ, model_patch=patch)}
        report = evaluate([task], predictions, run_id=kind, output_dir=tmp_path, opener=fake_opener)
        grade = report.grades[FREQ]
        assert grade.test_source == "stdout:unittest"
        assert grade.resolved is (kind == "gold"), (grade.failure_reason, grade.test_statuses)
        if kind == "broken":
            assert grade.tests_status["PASS_TO_PASS"]["failure"] == [name.format("test_counts_ints")]


class _DiesWhenClosed:
    """A fake environment whose hidden-test run raises SIGINT in this process and then
    blocks until the environment is closed, returning what a killed container returns:
    the order of a real interrupt (stop first, then the container goes)."""

    def __init__(self, env, signum) -> None:
        import threading

        self._env = env
        self._signum = signum
        self._closed = threading.Event()
        self.interrupted = False

    def __getattr__(self, name):
        return getattr(self._env, name)

    def exec(self, cmd, timeout=None):
        import os

        from swerve.schema import ExecResult

        if "junitxml" in cmd and not self.interrupted:
            self.interrupted = True
            os.kill(os.getpid(), self._signum)
            assert self._closed.wait(30), "the interrupted run never closed the environment"
            return ExecResult(output="Killed\n", exit_code=137, duration_s=0.0)
        return self._env.exec(cmd, timeout=timeout)

    def close(self) -> None:
        self._closed.set()
        self._env.close()


@pytest.mark.parametrize(("signame", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_instance_interrupted_mid_test_is_never_saved_and_is_graded_on_resume(toolz_tasks, fake_opener, tmp_path,
                                                                                 signame, code):
    """As the command line runs it: environments are also closed by the SIGTERM cleanup
    handler; the evaluator's own handler must stop the run before anything is killed."""
    import signal

    from swerve.environments.cleanup import install_signal_handlers

    install_signal_handlers()
    tasks = list(toolz_tasks.values())
    gold = load_predictions("gold", tasks)
    victim = tasks[1].instance_id
    wrapped = []

    def opener(task, backend, limits, run_id):
        env = fake_opener(task, backend, limits, run_id)
        if task.instance_id == victim and not wrapped:
            env = _DiesWhenClosed(env, getattr(signal, signame))
            wrapped.append(env)
        return env

    with pytest.raises(KeyboardInterrupt) as stopped:
        evaluate(tasks, gold, run_id="mid-test", output_dir=tmp_path, opener=opener, workers=1)
    assert getattr(stopped.value, "exit_code", None) == code
    folder = tmp_path / "mid-test" / "instances" / victim
    assert wrapped and wrapped[0].interrupted
    assert not (folder / "report.json").exists() and not (folder / "error.json").exists()
    summary = json.loads((tmp_path / "mid-test" / "summary.json").read_text())
    assert summary["interrupted"] is True and victim not in summary["completed_ids"] and summary["error_ids"] == []
    assert all(env.closed for env in fake_opener.opened)

    resumed = evaluate(tasks, gold, run_id="mid-test", output_dir=tmp_path, opener=fake_opener, workers=1)
    assert victim not in resumed.skipped
    assert resumed.summary["resolved_ids"] == sorted(toolz_tasks)
    assert not (tmp_path / "mid-test" / ".swerve-run.lock").exists()


def test_oversized_patches_are_refused_without_an_environment_and_regraded_when_allowed(toolz_tasks, fake_opener,
                                                                                       tmp_path):
    task = toolz_tasks[FREQ]
    gold = load_predictions("gold", [task])
    limit = len(task.patch.encode()) - 1
    refused = evaluate([task], gold, run_id="size", output_dir=tmp_path, opener=fake_opener, max_patch_bytes=limit)
    grade = refused.grades[FREQ]
    assert grade.failure_class is FailureClass.PATCH_REFUSED and not grade.resolved
    assert f"over the {limit:,}-byte limit" in grade.failure_reason and "oversized_patch" in grade.tamper_flags
    assert refused.errors == {} and fake_opener.opened == []
    assert not (tmp_path / "size" / "instances" / FREQ / "patch.diff").exists()

    again = evaluate([task], gold, run_id="size", output_dir=tmp_path, opener=fake_opener, max_patch_bytes=limit)
    assert again.skipped == [FREQ] and fake_opener.opened == []
    allowed = evaluate([task], gold, run_id="size", output_dir=tmp_path, opener=fake_opener)
    assert allowed.skipped == [] and allowed.grades[FREQ].resolved


def test_the_run_folder_lock_is_reentrant_in_one_process_and_removed_after(tmp_path):
    from swerve.fileio import RUN_FOLDER_LOCK, run_folder_lock

    with run_folder_lock(tmp_path / "run"):
        with run_folder_lock(tmp_path / "run"):
            pass
        assert (tmp_path / "run" / RUN_FOLDER_LOCK).read_text() == str(__import__("os").getpid())
    assert not (tmp_path / "run" / RUN_FOLDER_LOCK).exists()
