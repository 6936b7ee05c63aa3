"""Re-grade swerve's stored log with SWE-bench's own code (the `swebench` package):
its log parser and grading, run on the test_output.txt swerve wrote."""

from __future__ import annotations

from pathlib import Path

from swerve.schema import Task


def official_verdict(task: Task, log_path: Path) -> tuple[bool, dict[str, str]]:
    """(resolved, status map) as swebench's get_logs_eval + get_eval_tests_report give them."""
    from swebench.harness.grading import get_eval_tests_report, get_logs_eval, get_resolution_status
    from swebench.types import TestSpec

    spec = TestSpec(instance_id=task.instance_id, image="", eval_script_list=[], repo=task.repo, version=task.version,
                    FAIL_TO_PASS=task.FAIL_TO_PASS, PASS_TO_PASS=task.PASS_TO_PASS,
                    log_parser=task.log_parser or "parse_log_pytest", eval_type="pass_and_fail")
    status_map, found = get_logs_eval(spec, str(log_path))
    if not found:
        return False, {}
    report = get_eval_tests_report(status_map, {"FAIL_TO_PASS": task.FAIL_TO_PASS, "PASS_TO_PASS": task.PASS_TO_PASS})
    return get_resolution_status(report) == "RESOLVED_FULL", status_map


def readme_noop_patch(first_line: str, path: str = "README.rst") -> str:
    """A patch that adds one blank line at the top of the README (the tests still run)."""
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1 +1,2 @@\n+\n {first_line}\n")
