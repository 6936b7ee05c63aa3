"""The evaluator's stages and typed outcomes: error kinds instead of string prefixes,
classification of a test run, the environment scheduler, canaries planted in one
round trip (on the scratch backend: a real repository and a real bash)."""

from __future__ import annotations

import json
import threading

import pytest

from swerve.errors import InfraError, TaskFormatError
from swerve.harness.outcomes import ErrorKind, EvalError

FREQ = "pytoolz__toolz-frequencies-none"


@pytest.mark.parametrize("exc,kind,prefix", [
    (InfraError("the daemon went away"), ErrorKind.INFRA, "infra: the daemon went away"),
    (TaskFormatError("row 3: no spec"), ErrorKind.BAD_TASK, "bad task: row 3: no spec"),
    (KeyError("x"), ErrorKind.HARNESS, "harness error: KeyError: 'x'"),
])
def test_errors_are_classified_by_type_and_keep_their_stored_text(exc, kind, prefix):
    error = EvalError.from_exception(exc, attempts=2)
    assert error.kind is kind and error.text == prefix and error.attempts == 2
    assert error.retried is (kind is ErrorKind.INFRA)
    assert EvalError.from_text(error.text, attempts=2) == error


def test_run_report_lists_failures_by_kind(tmp_path):
    from swerve.harness.evaluate import RunReport

    report = RunReport(run_id="r", run_dir=tmp_path)
    report.failures["a"] = EvalError(ErrorKind.BAD_TASK, "no spec")
    report.failures["b"] = EvalError(ErrorKind.INFRA, "daemon")
    assert report.failed(ErrorKind.BAD_TASK) == ["a"] and report.failed(ErrorKind.INFRA) == ["b"]
    assert report.errors == {"a": "bad task: no spec", "b": "infra: daemon"}


def test_infra_errors_are_retried_and_written_with_their_kind(tmp_path, toolz_tasks, monkeypatch):
    import swerve.harness.evaluate as evaluator
    from swerve.harness.tasks import load_predictions

    monkeypatch.setattr(evaluator.time, "sleep", lambda seconds: None)
    calls = []

    def broken(task, backend, limits, run_id):
        calls.append(task.instance_id)
        raise InfraError("no daemon")

    task = toolz_tasks[FREQ]
    report = evaluator.evaluate([task], load_predictions("gold", [task]), run_id="kinds", output_dir=tmp_path,
                                backend="local", opener=broken, infra_attempts=2)
    assert calls == [FREQ, FREQ]
    assert report.failures[FREQ] == EvalError(ErrorKind.INFRA, "no daemon", attempts=2)
    stored = json.loads((tmp_path / "kinds" / "instances" / FREQ / "error.json").read_text())
    assert stored == {"instance_id": FREQ, "error": "infra: no daemon", "kind": "infra", "attempts": 2}
    assert report.summary["error_ids"] == [FREQ]


def test_a_harness_error_is_not_retried(tmp_path, toolz_tasks):
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions

    calls = []

    def buggy(task, backend, limits, run_id):
        calls.append(task.instance_id)
        raise KeyError("bug")

    task = toolz_tasks[FREQ]
    report = evaluate([task], load_predictions("gold", [task]), run_id="bug", output_dir=tmp_path, backend="local",
                      opener=buggy)
    assert calls == [FREQ]
    assert report.failures[FREQ].kind is ErrorKind.HARNESS and report.failures[FREQ].attempts == 1


def _run(**fields):
    from swerve.harness.hidden_tests import TestRun

    return TestRun(**fields)


def test_classify_test_run(toolz_tasks):
    from swerve.harness.evaluate import classify_test_run
    from swerve.schema import FailureClass, Grade, TestStatus

    task = toolz_tasks[FREQ]
    passing = {test: TestStatus.PASSED for test in [*task.FAIL_TO_PASS, *task.PASS_TO_PASS]}
    graded = classify_test_run(Grade(instance_id=FREQ), task, _run(statuses=passing, exit_code=0, source="junit"), [])
    assert graded.resolved and graded.failure_class is FailureClass.NONE and graded.test_source == "junit"

    failing = {**passing, task.FAIL_TO_PASS[0]: TestStatus.FAILED}
    graded = classify_test_run(Grade(instance_id=FREQ), task, _run(statuses=failing, exit_code=1), ["tests/t.py"])
    assert not graded.resolved and graded.failure_class is FailureClass.TESTS_FAILED
    assert graded.failure_reason.startswith("1 FAIL_TO_PASS test(s) not passing")

    graded = classify_test_run(Grade(instance_id=FREQ), task, _run(timed_out=True, error="tests timed out"), [])
    assert graded.failure_class is FailureClass.TIMEOUT

    forged = _run(statuses=passing, exit_code=0, tamper_flags=["canary_forged"], error="forged")
    graded = classify_test_run(Grade(instance_id=FREQ), task, forged, [])
    assert not graded.resolved and graded.failure_class is FailureClass.TESTS_FAILED
    assert "canary_forged" in graded.tamper_flags

    graded = classify_test_run(Grade(instance_id=FREQ), task, _run(error="no JUnit results"), ["tests/t.py"])
    assert graded.failure_class is FailureClass.TEST_ERROR and graded.failure_reason == "no JUnit results"


class _Env:
    def __init__(self, name):
        self.name = name
        self.closed = threading.Event()

    def close(self):
        self.closed.set()


def test_scheduler_opens_the_next_environment_ahead_and_closes_unclaimed_ones(toolz_tasks):
    from swerve.harness.eval_scheduler import EnvironmentScheduler

    tasks = list(toolz_tasks.values())
    opened: dict[str, _Env] = {}
    lock = threading.Lock()

    def opener(task, backend, limits, run_id):
        with lock:
            opened[task.instance_id] = _Env(task.instance_id)
            return opened[task.instance_id]

    scheduler = EnvironmentScheduler(opener, backend="local", limits=None, run_id="s", workers=1, upcoming=tasks)
    first = scheduler.open(tasks[0], "local", None, "s")
    assert first.name == tasks[0].instance_id
    scheduler.close(first)
    scheduler.finish()  # waits for the prefetch of tasks[1], then closes it: nobody claimed it
    assert sorted(opened) == sorted([tasks[0].instance_id, tasks[1].instance_id])
    assert all(env.closed.is_set() for env in opened.values())


def test_scheduler_refuses_to_hand_out_environments_once_stopped(toolz_tasks):
    from concurrent.futures import ThreadPoolExecutor

    from swerve.harness.eval_scheduler import EnvironmentScheduler
    from swerve.harness.outcomes import EvaluationStopped

    tasks = list(toolz_tasks.values())
    made: list[_Env] = []
    scheduler = EnvironmentScheduler(lambda task, *a: made.append(_Env(task.instance_id)) or made[-1],
                                     backend="local", limits=None, run_id="s", workers=1, upcoming=[])
    scheduler.abandon([], ThreadPoolExecutor(max_workers=1))
    with pytest.raises(EvaluationStopped):
        scheduler.open(tasks[0], "local", None, "s")
    assert made and made[0].closed.is_set()


class _Counting:
    """Counts the round trips an environment is asked for."""

    def __init__(self, env):
        self.env = env
        self.calls: list[str] = []

    def read_file(self, path):
        self.calls.append("read_file")
        return self.env.read_file(path)

    def write_file(self, path, text):
        self.calls.append("write_file")
        return self.env.write_file(path, text)

    def exec(self, cmd, timeout=None):
        self.calls.append("exec")
        return self.env.exec(cmd, timeout=timeout)


def test_canaries_are_planted_in_two_round_trips(fake_opener, toolz_tasks):
    from swerve.harness.canaries import plant_canaries

    task = toolz_tasks[FREQ]
    env = fake_opener(task, "scratch", None, "canaries")
    try:
        env.write_file("toolz/tests/test_marked.py", "import pytest\npytestmark = pytest.mark.slow\n\ndef test_a():\n    pass\n")
        modules = ["toolz/tests/test_itertoolz.py", "toolz/tests/test_dicttoolz.py", "toolz/tests/test_marked.py",
                   "toolz/tests/missing.py", "README.rst"]
        before = {m: env.read_file(m) for m in modules[:2]}
        counting = _Counting(env)
        planted = plant_canaries(counting, modules, workdir=env.info.workdir)
        assert counting.calls == ["exec", "exec"]
        assert [c.module for c in planted] == modules[:2]
        for canary in planted:
            text = env.read_file(canary.module)
            assert text.startswith(before[canary.module])
            assert f"def {canary.must_pass}():" in text and canary.token in text
        assert "def test_" not in env.read_file("toolz/tests/test_marked.py").split("def test_a", 1)[1]

    finally:
        env.close()


def test_a_canary_name_the_module_already_uses_is_not_planted(fake_opener, toolz_tasks, monkeypatch):
    import swerve.harness.canaries as canaries

    names = iter(["test_keeps_tuples_11", "test_keeps_tuples_12", "test_sorts_defaults_13", "test_sorts_defaults_14"])
    monkeypatch.setattr(canaries, "_name", lambda taken: next(names))
    env = fake_opener(toolz_tasks[FREQ], "scratch", None, "canaries")
    try:
        env.write_file("toolz/tests/test_taken.py", "def test_keeps_tuples_12():\n    pass\n")
        planted = canaries.plant_canaries(env, ["toolz/tests/test_taken.py"], workdir=env.info.workdir)
        assert [c.names for c in planted] == [("test_sorts_defaults_13", "test_sorts_defaults_14")]
        text = env.read_file("toolz/tests/test_taken.py")
        assert text.count("test_keeps_tuples_12") == 1 and "def test_sorts_defaults_13():" in text
    finally:
        env.close()


def test_a_canary_never_bears_the_name_of_a_test_in_another_module_of_the_run(fake_opener, toolz_tasks, monkeypatch):
    import swerve.harness.canaries as canaries

    names = iter(["test_keeps_tuples_11", "test_keeps_tuples_12", "test_sorts_defaults_13", "test_sorts_defaults_14",
                  "test_maps_boundaries_15", "test_maps_boundaries_16", "test_joins_tuples_17", "test_joins_tuples_18"])
    monkeypatch.setattr(canaries, "_name", lambda taken: next(names))
    env = fake_opener(toolz_tasks[FREQ], "scratch", None, "canaries")
    try:
        env.write_file("toolz/tests/test_one.py", "def test_maps_boundaries_15():\n    pass\n")
        env.write_file("toolz/tests/test_two.py", "def test_keeps_tuples_11():\n    pass\n")
        planted = canaries.plant_canaries(env, ["toolz/tests/test_one.py", "toolz/tests/test_two.py"],
                                          workdir=env.info.workdir)
        assert [(c.module, c.names) for c in planted] == [
            ("toolz/tests/test_one.py", ("test_sorts_defaults_13", "test_sorts_defaults_14")),
            ("toolz/tests/test_two.py", ("test_joins_tuples_17", "test_joins_tuples_18")),
        ]
    finally:
        env.close()


def test_the_stored_log_lists_each_passing_test_without_their_captured_output(tmp_path, toolz_tasks, fake_opener):
    """Rows without their own test command: PASSED lines for SWE-bench's parsers, no
    PASSES section (`-rA`'s captured output of passing tests, ~30% more CPU); a row's own
    `pytest -rA` is kept as given."""
    from swerve.harness.evaluate import evaluate
    from swerve.harness.hidden_tests import SUMMARY_FLAG, TRACEBACK_FLAG, pytest_command
    from swerve.harness.tasks import load_predictions

    task = toolz_tasks[FREQ]
    assert not task.test_cmd
    report = evaluate([task], load_predictions("gold", [task]), run_id="log", output_dir=tmp_path, backend="local",
                      opener=fake_opener)
    assert report.grades[FREQ].resolved
    folder = tmp_path / "log" / "instances" / FREQ
    log = (folder / "test_output.txt").read_text()
    for test in task.FAIL_TO_PASS:
        assert f"PASSED {test}" in log
    assert "= PASSES =" not in log
    assert SUMMARY_FLAG in (folder / "eval.sh").read_text()
    assert TRACEBACK_FLAG in (folder / "eval.sh").read_text()
    row = task.model_copy(update={"test_cmd": "pytest -rA"})
    assert pytest_command(row, junit_path="/tmp/j.xml", targets=["t.py"]).startswith("pytest -rA -p no:cacheprovider")
    row = task.model_copy(update={"test_cmd": "pytest --tb=no"})
    assert pytest_command(row, junit_path="/tmp/j.xml", targets=["t.py"]).startswith(
        "pytest --tb=no -rA -p no:cacheprovider"), "a row's own command keeps its --tb and gets -rA"


def test_an_evaluation_leaves_neither_the_hidden_tests_nor_its_results_on_the_host(tmp_path, toolz_tasks, fake_opener):
    """A scratch (or local) environment's /tmp is the host's: the staged test patch (the
    hidden tests) and the results folder are removed, also when the run ends early
    (here: a timeout)."""
    import glob

    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions

    def ours() -> set[str]:
        return set(glob.glob("/tmp/swerve-patch-*")) | set(glob.glob("/tmp/swerve-results-*"))

    task = toolz_tasks[FREQ]
    assert task.test_patch.strip()
    before = ours()
    report = evaluate([task], load_predictions("gold", [task]), run_id="clean", output_dir=tmp_path,
                      backend="local", opener=fake_opener)
    assert report.grades[FREQ].resolved
    slow_id = f"{FREQ}--slow"
    slow = task.model_copy(update={"instance_id": slow_id})
    gold = load_predictions("gold", [task])[FREQ].model_copy(update={"instance_id": slow_id})
    early = evaluate([slow], {slow_id: gold}, run_id="early", output_dir=tmp_path, backend="local",
                     opener=fake_opener, timeout=0.01)
    assert not early.grades[slow_id].resolved and "timed out" in early.grades[slow_id].failure_reason
    assert not ours() - before


def test_an_empty_patch_on_a_task_without_a_gold_patch_opens_no_environment_ahead(toolz_tasks):
    """An empty patch opens an environment only to record the base files the gold patch
    touches; with no gold patch nothing would claim a prefetched one."""
    from swerve.harness.evaluate import _needs_environment
    from swerve.schema import Prediction

    task = toolz_tasks[FREQ]
    empty = Prediction(instance_id=FREQ, model_name_or_path="m", model_patch="")
    assert _needs_environment(task, empty, None)
    assert not _needs_environment(task.model_copy(update={"patch": ""}), empty, None)
    assert _needs_environment(task, Prediction(instance_id=FREQ, model_name_or_path="m", model_patch=task.patch), None)


def test_restoring_from_base_brings_back_files_and_folders_and_removes_the_rest(toolz_tasks, fake_opener):
    """One removal and one checkout for every path: a deleted test folder comes back, an
    edited file is restored, a file the base lacks is removed, a glob-like name is taken
    literally (it must not restore what it would match)."""
    from swerve.harness.hidden_tests import restore_from_base

    env = fake_opener(toolz_tasks[FREQ], "local", None, "restore")
    try:
        env.exec("rm -rf toolz/tests && echo broken > toolz/utils.py && echo added > 'odd[1].py' "
                 "&& rm toolz/dicttoolz.py")
        restore_from_base(env, ["toolz/tests", "toolz/utils.py", "odd[1].py", "toolz/[d]icttoolz.py"])
        assert env.exec("test -e toolz/dicttoolz.py && echo back || echo gone").output.strip() == "gone"
        env.exec("git checkout -q -- toolz/dicttoolz.py")
        assert env.diff() == ""
    finally:
        env.close()


def test_the_next_instance_is_prepared_while_one_runs_its_tests(tmp_path, toolz_tasks, fake_opener, monkeypatch):
    """workers=1: one test run at a time, and a second instance's patch is applied before
    the first test run ends (that run waits for it: serial stages would never get there)."""
    import swerve.harness.evaluate as evaluator
    from swerve.harness.tasks import load_predictions

    lock = threading.Lock()
    second_applied = threading.Event()
    applies: list[str] = []
    running: list[str] = []
    most: list[int] = []
    real_run, real_apply = evaluator.hidden.run_hidden_tests, evaluator.hidden.apply_model_patch

    def apply(env, patch):
        result = real_apply(env, patch)
        with lock:
            applies.append(env.info.instance_id)
            if len(applies) >= 2:
                second_applied.set()
        return result

    def run(env, task, **kwargs):
        with lock:
            running.append(task.instance_id)
            most.append(len(running))
            first = len(most) == 1
        try:
            if first:
                assert second_applied.wait(60), "no other instance was prepared during the first test run"
            return real_run(env, task, **kwargs)
        finally:
            with lock:
                running.remove(task.instance_id)

    monkeypatch.setattr(evaluator.hidden, "run_hidden_tests", run)
    monkeypatch.setattr(evaluator.hidden, "apply_model_patch", apply)
    monkeypatch.setattr(evaluator.os, "cpu_count", lambda: 2)  # a core the one test run leaves free
    tasks = list(toolz_tasks.values())
    report = evaluator.evaluate(tasks, load_predictions("gold", tasks), run_id="overlap", output_dir=tmp_path,
                                backend="local", opener=fake_opener, workers=1)
    assert report.summary["resolved_instances"] == len(tasks)
    assert max(most) == 1, "workers=1 runs one test run at a time"


def test_an_instance_more_is_in_flight_only_when_a_core_is_free(monkeypatch, tmp_path):
    import swerve.harness.evaluate as evaluator

    def settings(workers, remote=None):
        return evaluator._RunSettings(run_id="r", run_dir=tmp_path, workers=workers, timeout=1, backend="local",
                                      reruns=0, limits=None, opener=None, infra_attempts=1, ray=None, remote=remote,
                                      max_patch_bytes=None)

    monkeypatch.setattr(evaluator.os, "cpu_count", lambda: 2)
    assert evaluator._instances_in_flight(settings(1)) == 2
    assert evaluator._instances_in_flight(settings(2)) == 2
    assert evaluator._instances_in_flight(settings(1, remote=object())) == 1
