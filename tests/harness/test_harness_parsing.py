"""Log parsing and grading rules beyond the swebench conformance corpus."""

from __future__ import annotations

import pytest

from swerve import schema
from swerve.harness import logparsers
from swerve.harness.grading import grade_statuses, grade_tests, is_resolved
from swerve.harness.hidden_tests import _pytest_consistent, nonced_eval_script

Status = schema.TestStatus


def test_junit_keeps_the_worse_of_call_and_teardown():
    xml = """<testsuites><testsuite>
    <testcase classname="tests.test_a" name="test_x" file="tests/test_a.py"/>
    <testcase classname="tests.test_a" name="test_x" file="tests/test_a.py"><error message="teardown"/></testcase>
    </testsuite></testsuites>"""
    assert logparsers.parse_junit_xml(xml) == {"tests/test_a.py::test_x": Status.ERROR}


@pytest.mark.parametrize("text", ["", "<testsuite", "not xml at all"])
def test_unreadable_junit_is_an_error(text):
    with pytest.raises(logparsers.JUnitFormatError):
        logparsers.parse_junit_xml(text)


def test_junit_without_file_attribute_guesses_module_path():
    xml = '<testsuite><testcase classname="pkg.tests.test_a.TestK" name="test_y[1]"/></testsuite>'
    assert logparsers.parse_junit_xml(xml) == {"pkg/tests/test_a.py::TestK::test_y[1]": Status.PASSED}


def test_parser_lookup_by_swebench_name():
    assert logparsers.parser_for("parse_log_django") is logparsers.parse_django
    assert logparsers.parser_for("parse_log_pytest_v2") is logparsers.parse_pytest_summary
    assert logparsers.parser_for("sympy") is logparsers.parse_sympy
    with pytest.raises(ValueError, match="unknown log parser"):
        logparsers.parser_for("made_up")


def test_design_rules_missing_or_skipped_fail_to_pass_fails():
    f2p, p2p = ["a", "b"], ["c"]
    assert is_resolved(grade_tests({"a": Status.PASSED, "b": Status.XFAIL, "c": Status.PASSED}, f2p, p2p))
    assert not is_resolved(grade_tests({"a": Status.PASSED, "c": Status.PASSED}, f2p, p2p))
    assert not is_resolved(grade_tests({"a": Status.PASSED, "b": Status.SKIPPED, "c": Status.PASSED}, f2p, p2p))
    assert not is_resolved(grade_tests({"a": Status.PASSED, "b": Status.PASSED}, f2p, p2p))
    report = grade_tests({"a": Status.PASSED, "b": Status.PASSED, "c": Status.ERROR}, f2p, p2p)
    assert report["PASS_TO_PASS"] == {"success": [], "failure": ["c"]}
    assert set(report) == {"FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL"}


def test_grade_statuses_reads_extra_lists_from_rows():
    task = schema.Task(instance_id="i", repo="o/r", FAIL_TO_PASS=["a"], PASS_TO_PASS=[], FAIL_TO_FAIL='["z"]')
    report, resolved = grade_statuses(task, {"a": Status.PASSED, "z": Status.FAILED})
    assert resolved and report["FAIL_TO_FAIL"] == {"success": [], "failure": ["z"]}


@pytest.mark.parametrize("statuses,code,ok", [
    ({"a": Status.PASSED}, 0, True), ({"a": Status.FAILED}, 1, True), ({}, 5, True),
    ({"a": Status.FAILED}, 0, False), ({"a": Status.PASSED}, 1, False), ({"a": Status.PASSED}, 2, False),
    ({"a": Status.PASSED}, 137, False),
])
def test_exit_code_consistency(statuses, code, ok):
    assert _pytest_consistent(statuses, code)[0] is ok


def test_eval_script_markers_get_the_nonce():
    script = "git apply t.diff\necho '>>>>> Start Test Output'\npytest -rA\necho '>>>>> End Test Output'\n"
    rewritten, start, end = nonced_eval_script(script, "abc123")
    assert start in rewritten and end in rewritten and ">>>>> Start Test Output'" not in rewritten
    assert start.endswith("abc123")
