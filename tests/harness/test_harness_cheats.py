"""The issue's cheats (a runner shadowed from the repository root, results forged in
the test process, interpreter hooks, a fake JUnit before an early exit, fake output at
exit) against the evaluator with the fake environment: never resolved, each named by
a flag, reward 0; and the honest fix still resolves and is paid. The docker sweep over
every bundled task file is in test_harness_cheats_docker.py."""

from __future__ import annotations

import pytest
from harness_adversarial_cases import CHEATS, FREQ, cheat_patch

from swerve.harness.evaluate import evaluate
from swerve.harness.flags import evidence_flags
from swerve.rl.rewards import compute_reward
from swerve.schema import Prediction, Trajectory


def test_every_cheat_is_caught_and_gold_still_resolves(toolz_tasks, prepared_toolz, fake_opener, tmp_path):
    base = toolz_tasks[FREQ]
    repo = prepared_toolz[FREQ]
    tasks, predictions, expected = [], {}, {}
    for cheat in CHEATS:
        task = base.model_copy(update={"instance_id": f"{FREQ}--{cheat.name}"})
        tasks.append(task)
        patch = cheat_patch(base, repo.path, repo.base_commit, cheat, tmp_path)
        predictions[task.instance_id] = Prediction(instance_id=task.instance_id, model_patch=patch)
        expected[task.instance_id] = cheat
    tasks.append(base)
    predictions[FREQ] = Prediction(instance_id=FREQ, model_patch=base.patch)

    report = evaluate(tasks, predictions, run_id="cheats", output_dir=tmp_path / "runs", opener=fake_opener,
                      workers=2, timeout=60)

    assert report.errors == {}
    problems = []
    for instance_id, cheat in expected.items():
        grade = report.grades[instance_id]
        reward = compute_reward(base, Trajectory(instance_id=instance_id, final_patch=""), grade)
        if grade.resolved or reward.value != 0.0 or cheat.flag not in grade.tamper_flags or not grade.failure_reason:
            problems.append(f"{cheat.name}: resolved={grade.resolved} reward={reward.value} "
                            f"flags={grade.tamper_flags} reason={grade.failure_reason!r}")
    assert not problems, "\n".join(problems)
    gold = report.grades[FREQ]
    assert gold.resolved and not evidence_flags(gold.tamper_flags), gold.failure_reason
    assert compute_reward(base, Trajectory(instance_id=FREQ, final_patch=base.patch), gold).value == 1.0
    known = base.test_patch + "".join((repo.path / module).read_text() for module in
                                      {test.split("::", 1)[0] for test in gold.test_statuses})
    leaked = [test for test in gold.test_statuses if test.rsplit("::", 1)[-1].split("[", 1)[0] not in known]
    assert not leaked, f"canary results leaked into the graded statuses: {leaked}"


@pytest.mark.parametrize("flag", ["suspicious_code:pytest internals", "junit_lookalike_in_patch"])
def test_string_flags_are_information_only(toolz_tasks, fake_opener, tmp_path, flag):
    """An honest fix whose text trips the string flags still resolves and is paid."""
    base = toolz_tasks[FREQ]
    comment = {"suspicious_code:pytest internals": "# mirrors _pytest's own handling of None keys\n",
               "junit_lookalike_in_patch": "# see <testcase name=frequencies> in the bug report\n"}[flag]
    first_hunk = base.patch.index("\n@@")
    hunk_header_end = base.patch.index("\n", first_hunk + 1) + 1
    header = base.patch[first_hunk + 1:hunk_header_end]
    import re

    old_start, old_len, new_start, new_len = map(int, re.match(r"@@ -(\d+),(\d+) \+(\d+),(\d+) @@", header).groups())
    patched = (base.patch[:first_hunk + 1] + f"@@ -{old_start},{old_len} +{new_start},{new_len + 1} @@"
               + header[header.index("@@", 2) + 2:] + "+" + comment + base.patch[hunk_header_end:])
    report = evaluate([base], {FREQ: Prediction(instance_id=FREQ, model_patch=patched)}, run_id="strings",
                      output_dir=tmp_path, opener=fake_opener, timeout=60)
    grade = report.grades[FREQ]
    assert flag in grade.tamper_flags
    assert grade.resolved, grade.failure_reason
    assert compute_reward(base, Trajectory(instance_id=FREQ, final_patch=patched), grade).value == 1.0


SELF_REPLACING_SHADOW = '''import importlib, os, sys
print("SHADOW-RAN", flush=True)
_here = os.path.dirname(os.path.abspath(__file__))
_saved = list(sys.path)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules[__name__]
sys.modules[__name__] = importlib.import_module(__name__)
sys.path[:] = _saved
'''


def _bootstrap(tmp_path, files: dict, added: list[str], *, front_of_path: bool, append_repo: bool):
    """Run the pytest bootstrap on a tiny repository; (exit code, output, report)."""
    import json
    import subprocess
    import sys

    from swerve.harness.runner import BOOTSTRAP

    repo, results = tmp_path / "repo", tmp_path / "results"
    repo.mkdir()
    results.mkdir()
    (repo / "test_t.py").write_text("import os\n\n\ndef test_ok():\n    assert 'PYTHONSAFEPATH' not in os.environ\n")
    for name, text in files.items():
        (repo / name).write_text(text)
    (results / "runner.py").write_text(BOOTSTRAP)
    (results / "added.txt").write_text("".join(f"{p}\n" for p in added))
    env = {"PATH": "/usr/bin:/bin", "PYTHONSAFEPATH": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    if front_of_path:
        env["PYTHONPATH"] = str(repo)
    done = subprocess.run([sys.executable, str(results / "runner.py"), str(repo), str(results / "added.txt"),
                           str(results / "report.json"), "1" if append_repo else "0", "--", "-q", "-p",
                           "no:cacheprovider", "test_t.py"], cwd=repo, env=env, capture_output=True, text=True)
    report = results / "report.json"
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text()) if report.exists() else {}


def test_bootstrap_refuses_a_dependency_shadowed_by_an_added_file(tmp_path):
    """pytest's own dependency shadowed from the front of sys.path (the local backend's
    .pth order), by a module that swaps itself out of sys.modules: refused by name."""
    from swerve.harness.runner import RUNNER_REFUSED_EXIT

    code, output, report = _bootstrap(tmp_path, {"iniconfig.py": SELF_REPLACING_SHADOW}, ["iniconfig.py"],
                                      front_of_path=True, append_repo=False)
    assert code == RUNNER_REFUSED_EXIT, output
    assert report["ok"] is False and any("iniconfig.py" in p for p in report["problems"]), report
    assert "1 passed" not in output


def test_bootstrap_accepts_files_the_repository_had(tmp_path):
    code, output, report = _bootstrap(tmp_path, {"iniconfig.py": SELF_REPLACING_SHADOW}, [],
                                      front_of_path=True, append_repo=False)
    assert code == 0 and "1 passed" in output and report["ok"] is True, output


def test_bootstrap_never_imports_a_repo_root_pytest_py(tmp_path):
    """`python -m pytest` semantics (the repository importable) without the
    repository ahead of site-packages: a root pytest.py is never imported."""
    code, output, report = _bootstrap(tmp_path, {"pytest.py": SELF_REPLACING_SHADOW}, ["pytest.py"],
                                      front_of_path=False, append_repo=True)
    assert code == 0 and "1 passed" in output, output
    assert "SHADOW-RAN" not in output
    assert "/repo/" not in report["origins"]["pytest"][0]


def test_cheats_in_the_local_backend(toolz_tasks, prepared_toolz, tmp_path):
    """The local backend puts the repository ahead of the shared dependencies on
    sys.path: the runner shadow is still removed and never imported, forgery is still
    caught, gold still resolves."""
    from harness_adversarial_cases import CHEATS_BY_NAME

    from swerve.environments import open_environment

    base, repo = toolz_tasks[FREQ], prepared_toolz[FREQ]
    tasks, predictions = [base], {FREQ: Prediction(instance_id=FREQ, model_patch=base.patch)}
    for name in ("shadow-pytest-py", "forge-reports-in-process"):
        copy = base.model_copy(update={"instance_id": f"{FREQ}--{name}"})
        tasks.append(copy)
        predictions[copy.instance_id] = Prediction(
            instance_id=copy.instance_id,
            model_patch=cheat_patch(base, repo.path, repo.base_commit, CHEATS_BY_NAME[name], tmp_path))

    report = evaluate(tasks, predictions, run_id="local-cheats", output_dir=tmp_path / "runs", timeout=120,
                      opener=lambda task, backend, limits, run_id: open_environment(base, "local", limits, run_id))

    assert report.errors == {}
    assert report.grades[FREQ].resolved, report.grades[FREQ].failure_reason
    for name in ("shadow-pytest-py", "forge-reports-in-process"):
        grade = report.grades[f"{FREQ}--{name}"]
        assert not grade.resolved and CHEATS_BY_NAME[name].flag in grade.tamper_flags, (name, grade.tamper_flags)


def _canary_case(passed="PASSED", failed="FAILED", message_has_token=True):
    from swerve.harness.canaries import Canary
    from swerve.schema import TestStatus

    canary = Canary(module="tests/test_m.py", must_pass="test_keeps_tuples_12", must_fail="test_sorts_unicode_text_40",
                    token="c0ffee")
    statuses = {"tests/test_m.py::test_real": TestStatus.PASSED}
    cases = ['<testcase classname="tests.test_m" name="test_real" file="tests/test_m.py"/>']
    if passed:
        statuses[f"tests/test_m.py::{canary.must_pass}"] = TestStatus(passed)
    if failed:
        statuses[f"tests/test_m.py::{canary.must_fail}"] = TestStatus(failed)
        message = "AssertionError: c0ffee" if message_has_token else "AssertionError"
        cases.append(f'<testcase classname="tests.test_m" name="{canary.must_fail}" file="tests/test_m.py">'
                     f'<failure message="{message}">boom</failure></testcase>')
    xml = f'<testsuites><testsuite>{"".join(cases)}</testsuite></testsuites>'
    return canary, statuses, xml


@pytest.mark.parametrize("kwargs,exit_code,fragment", [
    ({}, 1, None),
    ({}, 0, "exit status was 0"),
    ({"failed": "PASSED"}, 0, "must fail reported PASSED"),
    ({"passed": "FAILED"}, 1, "must pass reported FAILED"),
    ({"message_has_token": False}, 1, "without its own message"),
    ({"passed": None, "failed": None}, 0, "missing from the results"),
])
def test_canary_rules(kwargs, exit_code, fragment):
    from swerve.harness.canaries import canary_disagreements, strip_canaries

    canary, statuses, xml = _canary_case(**kwargs)
    problems = canary_disagreements([canary], statuses, xml, exit_code, ["tests/test_m.py::test_real"])
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in problem for problem in problems), problems
    assert list(strip_canaries(statuses, [canary])) == ["tests/test_m.py::test_real"]


def test_canaries_judge_only_modules_whose_graded_tests_pass():
    """A module that did not run (collection error, skip mark) cannot forge a pass, so
    its missing canaries are not evidence against an honest broken patch."""
    from swerve.harness.canaries import canary_disagreements
    from swerve.schema import TestStatus

    canary, _, xml = _canary_case()
    statuses = {"tests/test_m.py::test_real": TestStatus.ERROR}
    assert canary_disagreements([canary], statuses, xml, 2, ["tests/test_m.py::test_real"]) == []


def test_canary_names_look_like_tests():
    from swerve.harness.canaries import Canary, canary_source

    canary = Canary(module="m.py", must_pass="test_keeps_tuples_12", must_fail="test_sorts_unicode_text_40", token="ab12")
    source = canary_source(canary)
    compile(source, "m.py", "exec")
    assert "canary" not in source.lower() and "swerve" not in source.lower()
    namespace: dict = {}
    exec(source, namespace)
    namespace[canary.must_pass]()
    with pytest.raises(AssertionError, match="ab12"):
        namespace[canary.must_fail]()


@pytest.mark.parametrize("command,stops", [
    ("python -m pytest -x", True), ("pytest --maxfail=1", True), ("pytest -vx", True), ("pytest --exitfirst", True),
    ("pytest -rA", False), ("pytest -rxs", False), ("pytest -k xyz", False), ("", False),
])
def test_runs_that_stop_at_the_first_failure_get_no_canaries(toolz_tasks, command, stops):
    from swerve.harness.hidden_tests import _stops_early

    assert _stops_early(toolz_tasks[FREQ].model_copy(update={"test_cmd": command})) is stops


def test_a_canary_name_in_another_module_is_not_its_result():
    """Two modules' canaries judged together: module B's must-fail canary bears the name of
    module A's must-pass one; A's verdict is read from A's own test, so an honest run is not
    taken for a forgery (it was, now and then, when names were drawn per module)."""
    from swerve.harness.canaries import Canary, canary_disagreements
    from swerve.schema import TestStatus

    a = Canary(module="pkg/tests/test_a.py", must_pass="test_keeps_tuples_42", must_fail="test_maps_defaults_17",
               token="tok-a")
    b = Canary(module="pkg/tests/test_b.py", must_pass="test_sorts_boundaries_55", must_fail="test_keeps_tuples_42",
               token="tok-b")
    statuses = {
        "pkg/tests/test_b.py::test_sorts_boundaries_55": TestStatus.PASSED,
        "pkg/tests/test_b.py::test_keeps_tuples_42": TestStatus.FAILED,
        "pkg/tests/test_a.py::test_keeps_tuples_42": TestStatus.PASSED,
        "pkg/tests/test_a.py::test_maps_defaults_17": TestStatus.FAILED,
        "pkg/tests/test_a.py::test_real": TestStatus.PASSED,
        "pkg/tests/test_b.py::test_real": TestStatus.PASSED,
    }
    junit = ('<testsuite><testcase classname="pkg.tests.test_a" name="test_maps_defaults_17"><failure message="tok-a"/>'
             '</testcase><testcase classname="pkg.tests.test_b" name="test_keeps_tuples_42"><failure message="tok-b"/>'
             '</testcase></testsuite>')
    graded = ["pkg/tests/test_a.py::test_real", "pkg/tests/test_b.py::test_real"]
    assert canary_disagreements([a, b], statuses, junit, 1, graded) == []


def _two_module_case():
    """Module A's canaries, and a graded test of module B that bears A's must-pass name."""
    from swerve.harness.canaries import Canary
    from swerve.schema import TestStatus

    a = Canary(module="pkg/tests/test_a.py", must_pass="test_keeps_tuples_42", must_fail="test_maps_defaults_17",
               token="tok-a")
    statuses = {
        "pkg/tests/test_a.py::test_real": TestStatus.PASSED,
        "pkg/tests/test_b.py::test_keeps_tuples_42": TestStatus.PASSED,
        "pkg/tests/test_b.py::test_maps_defaults_17": TestStatus.PASSED,
    }
    return a, statuses


def test_a_canary_missing_from_its_module_is_not_read_from_another_module():
    """A's canaries left no result under A; B's tests of the same names are not theirs, so
    the verdict is 'missing' (not a must-fail canary that 'passed' in B)."""
    from swerve.harness.canaries import canary_disagreements

    a, statuses = _two_module_case()
    problems = canary_disagreements([a], statuses, "<testsuite/>", 1, ["pkg/tests/test_a.py::test_real"])
    assert problems and all("missing from the results" in p for p in problems[:1]), problems
    assert not any("reported PASSED" in p for p in problems), problems


def test_stripping_canaries_keeps_a_graded_test_of_the_same_name_in_another_module():
    from swerve.harness.canaries import strip_canaries
    from swerve.schema import TestStatus

    a, statuses = _two_module_case()
    statuses["pkg/tests/test_a.py::test_keeps_tuples_42"] = TestStatus.PASSED
    statuses["tests/test_a.py::test_maps_defaults_17"] = TestStatus.FAILED  # ids relative to pkg/
    assert sorted(strip_canaries(statuses, [a])) == ["pkg/tests/test_a.py::test_real",
                                                     "pkg/tests/test_b.py::test_keeps_tuples_42",
                                                     "pkg/tests/test_b.py::test_maps_defaults_17"]


def test_the_must_fail_message_is_read_from_the_canary_of_its_own_module():
    """B's test of the same name failing with A's token (printed, say) does not vouch for A's canary."""
    from swerve.harness.canaries import canary_disagreements
    from swerve.schema import TestStatus

    a, statuses = _two_module_case()
    statuses["pkg/tests/test_a.py::test_keeps_tuples_42"] = TestStatus.PASSED
    statuses["pkg/tests/test_a.py::test_maps_defaults_17"] = TestStatus.FAILED
    junit = ('<testsuite><testcase classname="pkg.tests.test_a" name="test_maps_defaults_17" '
             'file="pkg/tests/test_a.py"><failure message="AssertionError"/></testcase>'
             '<testcase classname="pkg.tests.test_b" name="test_maps_defaults_17" file="pkg/tests/test_b.py">'
             '<failure message="tok-a"/></testcase></testsuite>')
    problems = canary_disagreements([a], statuses, junit, 1, ["pkg/tests/test_a.py::test_real"])
    assert any("without its own message" in p for p in problems), problems


def test_a_teardown_error_is_not_a_fake_pass_in_the_output():
    """pytest prints PASSED then ERROR for a test that passed its call and errored in
    teardown (JUnit: error); that is honest output, not a forged PASSED line."""
    from swerve.harness.hidden_tests import fake_results_in_output
    from swerve.schema import TestStatus

    honest = "PASSED t.py::test_a\nERROR t.py::test_a - RuntimeError: teardown\n"
    assert not fake_results_in_output(honest, {"t.py::test_a": TestStatus.ERROR})
    assert fake_results_in_output("PASSED t.py::test_b\n", {"t.py::test_b": TestStatus.FAILED})
