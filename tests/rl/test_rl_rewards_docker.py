"""Rewards on real toolz tasks, graded by the evaluator in fresh containers."""

from __future__ import annotations

import pytest
from rl_fixtures import DISSOC_PARTIAL_FIX, TEST_TAMPER, toolz_tasks

from swerve.rl.rewards import binary_reward, partial_credit_reward, score_trajectory, shaped
from swerve.schema import Trajectory

pytestmark = pytest.mark.docker

DISSOC = "pytoolz__toolz-dissoc-missing"


def _score(task, patch, reward):
    trajectory = Trajectory(instance_id=task.instance_id, final_patch=patch)
    return score_trajectory(task, trajectory, reward=reward, backend="docker", run_id="test-rl-rewards")


@pytest.fixture(scope="module")
def dissoc():
    return toolz_tasks()[DISSOC]


def test_gold_patch_earns_one(docker_client, dissoc):
    result = _score(dissoc, dissoc.patch, binary_reward)
    assert result.value == 1.0 and result.grade.resolved and not result.flags


def test_empty_patch_earns_zero(docker_client, dissoc):
    result = _score(dissoc, "", partial_credit_reward)
    assert result.value == 0.0 and not result.grade.resolved


def test_partial_fix_earns_partial_credit(docker_client, dissoc):
    partial = _score(dissoc, DISSOC_PARTIAL_FIX, partial_credit_reward)
    assert partial.value == 0.5
    assert partial.grade.tests_status["FAIL_TO_PASS"]["success"] == [
        "toolz/tests/test_dicttoolz.py::test_dissoc_ignores_missing_keys[present-and-missing]"]
    binary = _score(dissoc, DISSOC_PARTIAL_FIX, binary_reward)
    assert binary.value == 0.0


def test_touching_tests_is_zero_and_flagged_even_when_resolved(docker_client, dissoc):
    result = _score(dissoc, dissoc.patch + TEST_TAMPER, shaped(partial_credit_reward, format_errors=0.1))
    assert result.grade.resolved, "the hidden tests were restored, so the real fix still passes"
    assert result.value == 0.0
    assert result.tampered and "tests_touched" in result.flags
    assert result.to_dict()["tampered"] is True
