"""Conformance with the official `swebench` package (a test-only dependency).

On a corpus of real pytest logs (the toolz fixture tasks run for real, before and
after the gold patch, plus a run of a module exercising every outcome) and
synthetic logs in unittest, Django and sympy formats, swerve's parsers and grader
must give the same statuses and verdicts as swebench's. Every disagreement is
listed here with the reason it is deliberate (and in docs/evaluation.md).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

swebench_parsers = pytest.importorskip("swebench.harness.log_parsers")
swebench_grading = pytest.importorskip("swebench.harness.grading")

from swerve.harness import logparsers  # noqa: E402
from swerve.harness.grading import is_resolved, grade_tests  # noqa: E402
from swerve import schema  # noqa: E402

Status = schema.TestStatus

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
TOOLZ = Path(__file__).resolve().parent.parent / "fixtures" / "toolz_tasks.jsonl"

# (log file, swebench parser, swerve parser) -> {test name: (swebench status, swerve status)}
DELIBERATE = {
    ("pytest/mixed.log", "parse_log_pytest"): {
        # pytest ids may hold spaces; swebench cuts them at the first space. Grading
        # accepts SWE-bench's cut ids by prefix (see test_truncated_ids_grade_alike).
        "pkg/tests/test_mix.py::test_param[a": ("PASSED", None),
        "pkg/tests/test_mix.py::test_param[a b]": (None, "PASSED"),
    },
    ("pytest/hostile-atexit-fake-pass.log", "parse_log_pytest"): {
        # a forged PASSED line printed after the real summary: swebench keeps the last
        # line, swerve the worse outcome (and flags the conflict).
        "toolz/tests/test_itertoolz.py::test_frequencies_counts_none": ("PASSED", "FAILED"),
    },
    ("django/django_runtests.log", "parse_log_django"): {
        # swebench also records the bare method name from the `FAIL:`/`ERROR:` header
        # (a name no task lists, and one that collides across classes).
        "test_delete_view": ("FAILED", None),
        "test_history_view": ("ERROR", None),
        # unittest's `expected failure` is XFAIL (a pass), as pytest's xfail is in swebench.
        "test_known_issue (admin_views.tests.KnownIssues)": (None, "XFAIL"),
    },
    ("unittest/unittest_verbose.log", "parse_log_django"): {
        "test_error": ("ERROR", None),
        "test_fail": ("FAILED", None),
        "test_xfail (test_mod.TestThings.test_xfail)": (None, "XFAIL"),
    },
    ("sympy/sympy_bin_test.log", "parse_log_sympy"): {
        # sympy's `s` (skipped) is recorded as SKIPPED; swebench drops it.
        "test_has_skipped": (None, "SKIPPED"),
    },
}

PARSER_CASES = [
    *[(str(p.relative_to(LOGS)), "parse_log_pytest", logparsers.parse_pytest_summary) for p in sorted((LOGS / "pytest").glob("*.log"))],
    ("django/django_runtests.log", "parse_log_django", logparsers.parse_django),
    ("unittest/unittest_verbose.log", "parse_log_django", logparsers.parse_unittest_verbose),
    ("sympy/sympy_bin_test.log", "parse_log_sympy", logparsers.parse_sympy),
]


@pytest.mark.parametrize("log_name,swebench_name,ours", PARSER_CASES, ids=[c[0] for c in PARSER_CASES])
def test_stdout_parsers_match_swebench(log_name, swebench_name, ours):
    text = (LOGS / log_name).read_text()
    theirs = swebench_parsers.PARSER_REGISTRY[swebench_name](text, None)
    mine = {name: status.value for name, status in ours(text).items()}
    assert theirs, "the corpus log must give swebench something to parse"
    differences = {
        name: (theirs.get(name), mine.get(name))
        for name in set(theirs) | set(mine)
        if theirs.get(name) != mine.get(name)
    }
    assert differences == DELIBERATE.get((log_name, swebench_name), {})


def _toolz_cases():
    for line in TOOLZ.read_text().splitlines():
        task = json.loads(line)
        for label in ("base", "gold"):
            yield pytest.param(task, label, id=f"{task['instance_id']}.{label}")


@pytest.mark.parametrize("task,label", list(_toolz_cases()))
def test_real_runs_grade_like_swebench(task, label):
    """swerve (JUnit) and swebench (stdout) reach the same tests_status and verdict."""
    log = (LOGS / "pytest" / f"{task['instance_id']}.{label}.log").read_text()
    junit = (LOGS / "pytest" / f"{task['instance_id']}.{label}.junit.xml").read_text()
    theirs_map = swebench_parsers.PARSER_REGISTRY["parse_log_pytest"](log, None)
    gold_results = {"FAIL_TO_PASS": task["FAIL_TO_PASS"], "PASS_TO_PASS": task["PASS_TO_PASS"]}
    theirs = swebench_grading.get_eval_tests_report(theirs_map, gold_results)
    their_verdict = swebench_grading.get_resolution_status(theirs) == "RESOLVED_FULL"

    mine = grade_tests(logparsers.parse_junit_xml(junit), task["FAIL_TO_PASS"], task["PASS_TO_PASS"])
    assert mine == theirs
    assert is_resolved(mine) == their_verdict == (label == "gold")


def test_junit_and_stdout_agree_on_every_real_run():
    for junit_path in sorted((LOGS / "pytest").glob("*.junit.xml")):
        if junit_path.name.startswith(("mixed", "hostile")):
            continue
        log = junit_path.with_name(junit_path.name.replace(".junit.xml", ".log")).read_text()
        assert logparsers.parse_junit_xml(junit_path.read_text()) == logparsers.parse_pytest_summary(log), junit_path.name


def test_junit_of_the_mixed_run_has_every_outcome():
    statuses = logparsers.parse_junit_xml((LOGS / "pytest" / "mixed.junit.xml").read_text())
    family2 = logparsers.parse_junit_xml((LOGS / "pytest" / "mixed.junit2.xml").read_text())
    assert statuses == family2
    base = "pkg/tests/test_mix.py::"
    assert statuses[base + "test_pass"] is Status.PASSED
    assert statuses[base + "test_fail"] is Status.FAILED
    assert statuses[base + "test_skip"] is Status.SKIPPED
    assert statuses[base + "test_xfail"] is Status.XFAIL
    assert statuses[base + "test_xpass_strict"] is Status.FAILED
    assert statuses[base + "test_error"] is Status.ERROR
    assert statuses[base + "test_param[a b]"] is Status.PASSED
    assert statuses[base + "test_param[p/q]"] is Status.FAILED
    assert statuses[base + "TestOuter::TestInner::test_nested"] is Status.FAILED
    # where stdout and JUnit overlap they agree; JUnit also knows the skipped test by name
    stdout = logparsers.parse_pytest_summary((LOGS / "pytest" / "mixed.log").read_text())
    assert {k: v for k, v in statuses.items() if k in stdout} == stdout
    assert set(statuses) - set(stdout) == {base + "test_skip"}


STATUS_CHOICES = [None, "PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL"]


def test_grader_matches_swebench_on_every_status_combination():
    """Exhaustive over 2 FAIL_TO_PASS x 2 PASS_TO_PASS tests and every status (or absence)."""
    tests = ["t.py::test_f1", "t.py::test_f2", "t.py::test_p1", "t.py::test_p2"]
    gold = {"FAIL_TO_PASS": tests[:2], "PASS_TO_PASS": tests[2:]}
    checked = 0
    for combo in itertools.product(STATUS_CHOICES, repeat=4):
        status_map = {t: s for t, s in zip(tests, combo) if s is not None}
        theirs = swebench_grading.get_eval_tests_report(status_map, gold)
        mine = grade_tests({t: Status(s) for t, s in status_map.items()}, gold["FAIL_TO_PASS"], gold["PASS_TO_PASS"])
        assert {k: mine[k] for k in ("FAIL_TO_PASS", "PASS_TO_PASS")} == {k: theirs[k] for k in ("FAIL_TO_PASS", "PASS_TO_PASS")}, combo
        assert is_resolved(mine) == (swebench_grading.get_resolution_status(theirs) == "RESOLVED_FULL"), combo
        checked += 1
    assert checked == 6 ** 4


def test_truncated_ids_grade_alike():
    status_map = {"t.py::test_x[a b]": "PASSED", "t.py::test_y[c d]": "FAILED", "t.py::test_z": "PASSED"}
    gold = {"FAIL_TO_PASS": ["t.py::test_x[a", "t.py::test_y[c"], "PASS_TO_PASS": ["t.py::test_z", "t.py::test_q["]}
    theirs = swebench_grading.get_eval_tests_report(status_map, gold)
    mine = grade_tests({k: Status(v) for k, v in status_map.items()}, gold["FAIL_TO_PASS"], gold["PASS_TO_PASS"])
    assert {k: mine[k] for k in gold} == {k: theirs[k] for k in gold}


def test_fail_only_grading_matches():
    status_map = {"a": "FAILED", "b": "PASSED"}
    gold = {"FAIL_TO_PASS": ["a", "b", "c"], "PASS_TO_PASS": ["d"]}
    from swebench.harness.constants import EvalType

    theirs = swebench_grading.get_eval_tests_report(status_map, gold, eval_type=EvalType.FAIL_ONLY)
    mine = grade_tests({k: Status(v) for k, v in status_map.items()}, gold["FAIL_TO_PASS"], gold["PASS_TO_PASS"], eval_type="fail_only")
    assert {k: mine[k] for k in gold} == {k: theirs[k] for k in gold}


def test_hole_closed_fake_summary_after_exit(tmp_path):
    """A patch that prints a fake PASSED line from an atexit hook and exits 0: swebench's
    log-based grading resolves it; swerve's JUnit + exit-code check does not."""
    from swebench.types import TestSpec

    task = json.loads(TOOLZ.read_text().splitlines()[0])
    log_path = LOGS / "pytest" / "hostile-atexit-fake-pass.log"
    spec = TestSpec(instance_id=task["instance_id"], image="", eval_script_list=[], repo=task["repo"], version="",
                    FAIL_TO_PASS=task["FAIL_TO_PASS"], PASS_TO_PASS=task["PASS_TO_PASS"],
                    log_parser="parse_log_pytest", eval_type="pass_and_fail")
    their_map, found = swebench_grading.get_logs_eval(spec, str(log_path))
    assert found
    theirs = swebench_grading.get_eval_tests_report(their_map, {"FAIL_TO_PASS": task["FAIL_TO_PASS"], "PASS_TO_PASS": task["PASS_TO_PASS"]})
    assert swebench_grading.get_resolution_status(theirs) == "RESOLVED_FULL"

    from swerve.harness.hidden_tests import _pytest_consistent

    junit = logparsers.parse_junit_xml((LOGS / "pytest" / "hostile-atexit-fake-pass.junit.xml").read_text())
    mine = grade_tests(junit, task["FAIL_TO_PASS"], task["PASS_TO_PASS"])
    assert not is_resolved(mine)
    consistent, why = _pytest_consistent(junit, 0)
    assert not consistent and "exited 0" in why
    log = log_path.read_text()
    assert logparsers.pytest_conflicts(log) == ["toolz/tests/test_itertoolz.py::test_frequencies_counts_none"]
    assert not is_resolved(grade_tests(logparsers.parse_pytest_summary(log), task["FAIL_TO_PASS"], task["PASS_TO_PASS"]))


# ---- logs swerve stored for genuine SWE-bench rows (test_output.txt), re-graded by swebench

STORED = LOGS / "swebench"


def _stored_cases():
    for record in sorted(STORED.glob("*.json")):
        yield pytest.param(record, id=record.stem)


def _official(record: dict, log_path: Path) -> tuple[bool, dict[str, str]]:
    from swebench.types import TestSpec

    spec = TestSpec(instance_id=record["instance_id"], image="", eval_script_list=[], repo=record["repo"],
                    version=record["version"], FAIL_TO_PASS=record["FAIL_TO_PASS"], PASS_TO_PASS=record["PASS_TO_PASS"],
                    log_parser=record["log_parser"], eval_type="pass_and_fail")
    status_map, found = swebench_grading.get_logs_eval(spec, str(log_path))
    gold = {"FAIL_TO_PASS": record["FAIL_TO_PASS"], "PASS_TO_PASS": record["PASS_TO_PASS"]}
    report = swebench_grading.get_eval_tests_report(status_map, gold)
    return found and swebench_grading.get_resolution_status(report) == "RESOLVED_FULL", status_map


@pytest.mark.parametrize("record_path", list(_stored_cases()))
def test_stored_logs_regrade_to_swerves_verdict(record_path):
    """Real runs (Django runtests.py gold and no-op, sympy bin/test, flask pytest with JUnit
    as swerve's source): swebench's get_logs_eval + grading on the stored log gives swerve's
    verdict, and every graded test the official parser sees has swerve's outcome."""
    record = json.loads(record_path.read_text())
    theirs, status_map = _official(record, record_path.with_suffix(".test_output.txt"))
    assert theirs is record["swerve_resolved"]
    ours = record["swerve_test_statuses"]
    for test in [*record["FAIL_TO_PASS"], *record["PASS_TO_PASS"]]:
        if test in status_map:
            assert Status(status_map[test]).counts_as_pass == Status(ours[test]).counts_as_pass, test


def test_stored_logs_cover_each_runner():
    sources = {json.loads(p.read_text())["swerve_test_source"] for p in STORED.glob("*.json")}
    assert sources == {"junit", "stdout:parse_log_django", "stdout:parse_log_sympy"}


def test_official_log_defuses_markers_printed_by_the_tests():
    """A test run that prints its own end marker before the real results: the stored log keeps
    the real results inside the block SWE-bench reads, and the exit code after it."""
    from swerve.harness.swebench.official_log import official_log

    start, end = "SWERVE-START-abc", "SWERVE-END-abc"
    raw = (f"{start}\nPASSED t.py::test_x\n>>>>> End Test Output\n>>>>> Test Exit Code: 0\n"
           f"FAILED t.py::test_x - boom\n{end}\n")
    log = official_log(raw, start, end, exit_code=1, command="pytest -rA t.py")
    assert log.startswith("+ pytest -rA t.py\n>>>>> Start Test Output\n")
    assert log.count(">>>>> End Test Output") == 1 and log.count(">>>>> Test Exit Code:") == 1
    assert log.rstrip().endswith(">>>>> End Test Output\n>>>>> Test Exit Code: 1")
    body = log.split(">>>>> Start Test Output")[1].split(">>>>> End Test Output")[0]
    assert swebench_parsers.PARSER_REGISTRY["parse_log_pytest"](body, None)["t.py::test_x"] == "FAILED"
    assert swebench_grading.parse_test_exit_code(log) == 1


def test_official_log_of_an_eval_script_keeps_its_own_exit_line():
    from swerve.harness.swebench.official_log import official_log
    from swerve.harness.hidden_tests import nonced_eval_script

    script, start, end = nonced_eval_script(": '>>>>> Start Test Output'\npytest\n: '>>>>> End Test Output'\n", "n1")
    raw = f"+ : '{start}'\nPASSED a.py::t\n+ : '{end}'\n>>>>> Test Exit Code: 0\n"
    log = official_log(raw, start, end)
    assert "+ : '>>>>> Start Test Output'" in log and "+ : '>>>>> End Test Output'" in log
    assert "n1" not in log and swebench_grading.parse_test_exit_code(log) == 0
