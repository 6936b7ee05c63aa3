"""Default time limits for test runs, one place for every command that runs tests."""

from __future__ import annotations

TEST_RUN_TIMEOUT_S = 1800.0
"""Seconds one instance's test run may take wherever tests are graded (eval, run --evaluate,
tasks validate, RL rewards): what SWE-bench's harness allows."""

MINT_SUITE_TIMEOUT_S = 300.0
"""Seconds for one suite run on a mutation candidate: shorter than grading's because
mutants often loop forever."""
