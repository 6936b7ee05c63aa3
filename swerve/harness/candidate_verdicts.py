"""A candidate bug's verdict from the source's own tests, in a warm environment.

The full decision (`full_decision`): write the mutated file, run the whole suite; the
candidate is kept (`Verdict.OK`) when at least one previously passing test fails
(FAIL_TO_PASS), at least one still passes (PASS_TO_PASS), and a second whole-suite
run gives the same failures.

With a call map (swerve.harness.call_map) the candidate is first screened on the
tests that start the mutated function only: no such test means nothing can fail
(`no_failing_test`, no run at all); a screen that finds no failure, or cannot run,
rejects; a screen that finds a failure is confirmed by the whole-suite run, whose
result is the verdict. The screen counts as the second run when its failures are the
whole run's; otherwise a second whole run decides, as in the full decision. A
function that also runs at import time or in a fixture gets the full decision.

Every run takes `bytecode_cache`: a sealed cache (swerve.harness.bytecode_cache) the
runs read their bytecode from, or '' to compile everything in every run; and `server`:
the environment's pytest server (swerve.harness.pytest_server) that runs each in a child
of its own, or None for a new interpreter per run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

from swerve.errors import SwerveError
from swerve.harness.mutations import Candidate
from swerve.schema import Task, TestStatus

MIN_BASELINE_PASS_RATE = 0.8


class MintError(SwerveError):
    """Minting could not proceed; the message names the source and what to do."""


class Verdict(str, Enum):
    """What a candidate's test runs said."""

    OK = "ok"
    TIMEOUT = "timeout"
    SUITE_BROKEN = "suite_broken"
    TESTS_NOT_COLLECTED = "tests_not_collected"
    NO_FAILING_TEST = "no_failing_test"
    NO_PASSING_TEST = "no_passing_test"
    UNSTABLE = "unstable"


class RunScope(str, Enum):
    """Which tests decided a verdict."""

    NONE = "none"
    SELECTED = "selected"
    FULL = "full"


@dataclass
class CandidateOutcome:
    """One candidate's test result against the baseline."""

    verdict: Verdict
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0
    tests_run: RunScope = RunScope.FULL
    selected: int = 0


def run_suite(env, task: Task, timeout: float, bytecode_cache: str = "", server=None):
    """The whole suite, results from JUnit (the evaluator's pytest runner, no targets)."""
    from swerve.harness.hidden_tests import run_pytest_on

    return run_pytest_on(env, task, [], timeout=timeout, bytecode_cache=bytecode_cache, server=server)


def run_selected(env, task: Task, tests: list[str], timeout: float, bytecode_cache: str = "", server=None):
    """Only `tests`, through the same runner."""
    from swerve.harness.call_map import run_selected as run

    return run(env, task, tests, timeout=timeout, bytecode_cache=bytecode_cache, server=server)


def _passes(status: TestStatus | None) -> bool:
    return status is not None and status.counts_as_pass


def baseline_passing(env, task: Task, timeout: float, source: str,
                     bytecode_cache: str = "", server=None) -> tuple[list[str], int]:
    """Tests passing on the unmutated source; MintError when the suite does not
    run or fewer than 80% pass."""
    run = run_suite(env, task, timeout, bytecode_cache, server)
    statuses = run.statuses
    if run.timed_out:
        raise MintError(f"{source}: the test suite did not finish within {timeout:.0f}s; raise --timeout")
    if not statuses:
        reason = run.error or f"pytest exited {run.exit_code} and reported no tests"
        tail = " | ".join(line.strip() for line in run.output.strip().splitlines()[-3:] if line.strip())[-300:]
        raise MintError(f"{source}: the test suite does not run ({reason}; {tail}); mint from a source whose tests pass")
    counted = {t: s for t, s in statuses.items() if s is not TestStatus.SKIPPED}
    passing = sorted(t for t, s in counted.items() if _passes(s) and "::" in t)
    rate = len(passing) / len(counted) if counted else 0.0
    uncollected = sorted(t for t, s in counted.items() if "::" not in t and not _passes(s))
    if rate < MIN_BASELINE_PASS_RATE and uncollected:
        raise MintError(
            f"{source}: the test suite does not collect ({len(uncollected)} file(s) fail to import, e.g. "
            f"{uncollected[0]}); pin a test runner it supports (--test-requirement 'pytest<8') or mint another version"
        )
    if rate < MIN_BASELINE_PASS_RATE:
        raise MintError(
            f"{source}: only {len(passing)} of {len(counted)} tests pass ({rate:.0%} < "
            f"{MIN_BASELINE_PASS_RATE:.0%}); mint from a version whose test suite passes"
        )
    return passing, len(counted)


def test_candidate(env, task: Task, candidate: Candidate, passing: list[str], timeout: float,
                   call_map=None, bytecode_cache: str = "", server=None) -> CandidateOutcome:
    """The candidate's verdict; the environment is reset afterwards. With `call_map`
    the candidate is screened on the tests that start its function first."""
    started = time.monotonic()
    selected = call_map.tests_for(candidate, passing) if call_map is not None else None
    if selected == []:
        return CandidateOutcome(verdict=Verdict.NO_FAILING_TEST, tests_run=RunScope.NONE, seconds=time.monotonic() - started)
    try:
        env.write_file(candidate.file, candidate.mutated_source)
        if selected is None:
            outcome = full_decision(env, task, passing, timeout, bytecode_cache, server)
        else:
            outcome = screened_decision(env, task, passing, selected, timeout, bytecode_cache, server)
    finally:
        env.reset()
    outcome.seconds = time.monotonic() - started
    return outcome


def full_decision(env, task: Task, passing: list[str], timeout: float, bytecode_cache: str = "",
                  server=None) -> CandidateOutcome:
    """Two whole-suite runs (the mutated file already written)."""
    outcome = classify(run_suite(env, task, timeout, bytecode_cache, server), passing)
    if outcome.verdict is Verdict.OK:
        again = classify(run_suite(env, task, timeout, bytecode_cache, server), passing)
        if again.verdict is not Verdict.OK or set(again.fail_to_pass) != set(outcome.fail_to_pass):
            return CandidateOutcome(verdict=Verdict.UNSTABLE)
    return outcome


def screened_decision(env, task: Task, passing: list[str], selected: list[str], timeout: float,
                      bytecode_cache: str = "", server=None) -> CandidateOutcome:
    """The selected tests first; a failure found there is confirmed by the whole suite."""
    screen = classify_selected(run_selected(env, task, selected, timeout, bytecode_cache, server), passing, selected)
    if screen.verdict is not Verdict.OK:
        screen.tests_run, screen.selected = RunScope.SELECTED, len(selected)
        return screen
    outcome = classify(run_suite(env, task, timeout, bytecode_cache, server), passing)
    outcome.selected = len(selected)
    if outcome.verdict is not Verdict.OK:
        return outcome
    chosen = set(selected)
    if set(outcome.fail_to_pass) <= chosen and set(outcome.fail_to_pass) == set(screen.fail_to_pass):
        return outcome
    again = classify(run_suite(env, task, timeout, bytecode_cache, server), passing)
    if again.verdict is not Verdict.OK or set(again.fail_to_pass) != set(outcome.fail_to_pass):
        return CandidateOutcome(verdict=Verdict.UNSTABLE, selected=len(selected))
    return outcome


def classify(run, passing: list[str]) -> CandidateOutcome:
    """A whole-suite run against the baseline's passing tests."""
    outcome = classify_selected(run, passing, passing)
    if outcome.verdict is Verdict.OK:
        outcome.output = run.output
    return outcome


def classify_selected(run, passing: list[str], selected: list[str]) -> CandidateOutcome:
    """A run of `selected` only: the other passing tests cannot see the change, so they
    count as still passing."""
    if run.timed_out:
        return CandidateOutcome(verdict=Verdict.TIMEOUT)
    if not run.statuses:
        return CandidateOutcome(verdict=Verdict.SUITE_BROKEN)
    if any(t not in run.statuses for t in selected):
        return CandidateOutcome(verdict=Verdict.TESTS_NOT_COLLECTED)
    chosen = set(selected)
    f2p = [t for t in selected if run.statuses[t] in (TestStatus.FAILED, TestStatus.ERROR)]
    p2p = [t for t in passing if t not in chosen or _passes(run.statuses[t])]
    if not f2p:
        return CandidateOutcome(verdict=Verdict.NO_FAILING_TEST)
    if not p2p:
        return CandidateOutcome(verdict=Verdict.NO_PASSING_TEST)
    return CandidateOutcome(verdict=Verdict.OK, fail_to_pass=f2p, pass_to_pass=p2p)
