"""Grading: from per-test statuses to SWE-bench's `tests_status` and a verdict.

Rules (docs/evaluation.md, and SWE-bench's own where they agree):
- FAIL_TO_PASS succeeds only when the test PASSED (or XFAILed as expected); a
  missing, skipped, failed or erroring FAIL_TO_PASS test is a failure.
- PASS_TO_PASS succeeds when the test PASSED/XFAIL, or was SKIPPED (a skip is not
  a regression, as in SWE-bench); a missing one is a failure.
- resolved: every FAIL_TO_PASS succeeds and every PASS_TO_PASS succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from swerve.schema import TestStatus

TestsStatus = dict[str, dict[str, list[str]]]
CATEGORIES = ("FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL")


def lookup_status(test: str, statuses: Mapping[str, TestStatus]) -> TestStatus | None:
    """The status of `test`, tolerating SWE-bench's truncated parametrised ids.

    Some published ids are cut inside the parameter (`test_x[log(photon`); for
    those only (more '[' than ']'), a unique-outcome prefix match is accepted.
    """
    if test in statuses:
        return statuses[test]
    if test.count("[") > test.count("]"):
        matches = [status for name, status in statuses.items() if name.startswith(test)]
        if matches and len({status.counts_as_pass for status in matches}) == 1:
            return matches[0]
    return None


def passed(test: str, statuses: Mapping[str, TestStatus]) -> bool:
    status = lookup_status(test, statuses)
    return status is not None and status.counts_as_pass


def maintained(test: str, statuses: Mapping[str, TestStatus]) -> bool:
    status = lookup_status(test, statuses)
    return status is not None and (status.counts_as_pass or status is TestStatus.SKIPPED)


def _split(tests: Sequence[str], ok) -> dict[str, list[str]]:
    success = [test for test in tests if ok(test)]
    failure = [test for test in tests if not ok(test)]
    return {"success": success, "failure": failure}


def grade_tests(
    statuses: Mapping[str, TestStatus],
    fail_to_pass: Sequence[str],
    pass_to_pass: Sequence[str],
    fail_to_fail: Sequence[str] = (),
    pass_to_fail: Sequence[str] = (),
    eval_type: str = "pass_and_fail",
) -> TestsStatus:
    """SWE-bench's `tests_status` dict for one instance.

    `eval_type="fail_only"` (SWE-bench's grading for runners that print failures
    only) counts any test not reported FAILED as a success.
    """
    if eval_type == "fail_only":
        def not_failed(test: str) -> bool:
            return statuses.get(test) is not TestStatus.FAILED

        f2p_ok = p2p_ok = not_failed
    else:
        def f2p_ok(test: str) -> bool:
            return passed(test, statuses)

        def p2p_ok(test: str) -> bool:
            return maintained(test, statuses)

    return {
        "FAIL_TO_PASS": _split(fail_to_pass, f2p_ok),
        "PASS_TO_PASS": _split(pass_to_pass, p2p_ok),
        "FAIL_TO_FAIL": _split(fail_to_fail, f2p_ok),
        "PASS_TO_FAIL": _split(pass_to_fail, f2p_ok),
    }


def is_resolved(tests_status: TestsStatus) -> bool:
    """Every FAIL_TO_PASS and every PASS_TO_PASS test succeeded."""
    return not tests_status["FAIL_TO_PASS"]["failure"] and not tests_status["PASS_TO_PASS"]["failure"]


def task_test_lists(task) -> tuple[list[str], list[str], list[str], list[str]]:
    """FAIL_TO_PASS, PASS_TO_PASS and (when a row carries them) FAIL_TO_FAIL, PASS_TO_FAIL."""
    from swerve.schema import _as_list

    extra = task.model_extra or {}
    return (
        list(task.FAIL_TO_PASS),
        list(task.PASS_TO_PASS),
        list(_as_list(extra.get("FAIL_TO_FAIL"))),
        list(_as_list(extra.get("PASS_TO_FAIL"))),
    )


def grade_statuses(task, statuses: Mapping[str, TestStatus]) -> tuple[TestsStatus, bool]:
    """`tests_status` and the resolved verdict for `task` given per-test statuses."""
    f2p, p2p, f2f, p2f = task_test_lists(task)
    report = grade_tests(statuses, f2p, p2p, f2f, p2f, eval_type=task.eval_type or "pass_and_fail")
    return report, is_resolved(report)
