"""Reward functions and shaping terms on hand-made grades (no containers)."""

from __future__ import annotations

import pytest

from swerve.rl.rewards import (compute_reward, format_error_term, length_term, partial_credit_reward,
                               revert_rate_term, shaped)
from swerve.schema import Grade, Step, Task, Trajectory

TASK = Task(instance_id="t-1", repo="o/r", FAIL_TO_PASS=["a", "b", "c", "d"], PASS_TO_PASS=["p"])


def _grade(f2p_ok: int, p2p_ok: bool = True, **extra) -> Grade:
    names = ["a", "b", "c", "d"]
    return Grade(instance_id="t-1", resolved=f2p_ok == 4 and p2p_ok, tests_status={
        "FAIL_TO_PASS": {"success": names[:f2p_ok], "failure": names[f2p_ok:]},
        "PASS_TO_PASS": {"success": ["p"] if p2p_ok else [], "failure": [] if p2p_ok else ["p"]},
    }, **extra)


def _trajectory(steps: list[Step] | None = None) -> Trajectory:
    return Trajectory(instance_id="t-1", steps=steps or [], manifest={"limits": {"max_steps": 10}})


def test_partial_credit_is_the_fail_to_pass_fraction():
    assert partial_credit_reward(TASK, _trajectory(), _grade(3)) == 0.75


def test_partial_credit_is_gated_on_pass_to_pass():
    assert partial_credit_reward(TASK, _trajectory(), _grade(3, p2p_ok=False)) == 0.0


def test_evidence_and_restored_flags_zero_the_reward():
    result = compute_reward(TASK, _trajectory(), _grade(4, tamper_flags=["canary_forged"]))
    assert result.value == 0.0 and result.flags == ["canary_forged"] and result.terms["reward"] == 1.0
    touched = compute_reward(TASK, _trajectory(), _grade(4, tests_touched=["tests/test_x.py"]))
    assert touched.value == 0.0 and touched.flags == ["tests_touched"]
    shadow = compute_reward(TASK, _trajectory(), _grade(4, tamper_flags=["runner_shadowed:pytest.py"]))
    assert shadow.value == 0.0 and shadow.tampered


def test_information_flags_never_change_the_reward():
    flags = ["suspicious_code:pytest internals", "junit_lookalike_in_patch", "fake_results_in_output"]
    result = compute_reward(TASK, _trajectory(), _grade(4, tamper_flags=flags))
    assert result.value == 1.0 and result.flags == [] and not result.tampered
    assert result.grade.tamper_flags == flags, "the grade still records them"


def test_shaping_terms_lower_the_reward():
    steps = [Step(index=0, format_error="bad"), Step(index=1), Step(index=2), Step(index=3)]
    trajectory = _trajectory(steps)
    assert format_error_term(TASK, trajectory, _grade(4)) == 0.25
    assert length_term(TASK, trajectory, _grade(4)) == 0.4
    reward = shaped(partial_credit_reward, format_errors=0.4, length=0.5)
    result = compute_reward(TASK, trajectory, _grade(4), reward)
    assert result.value == pytest.approx(1.0 - 0.1 - 0.2)
    assert result.terms["format_errors"] == 0.25


def test_revert_rate_term_reads_step_diffs():
    added = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1,2 @@\n a\n+b\n"
    steps = [Step(index=0, diff=added), Step(index=1, diff="")]
    assert revert_rate_term(TASK, _trajectory(steps), _grade(0)) == 1.0


def test_unknown_shaping_term_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown shaping term"):
        shaped(partial_credit_reward, elegance=1.0)
