"""The rollout manager's group bookkeeping: a group's task is kept until the group is
taken, redone or given up, and a given-up group frees its slot once."""

from __future__ import annotations

import itertools
import time

from rl_fixtures import ScratchEnvironment, ScriptedPolicy

from swerve.rl.rollouts import RolloutManager
from swerve.schema import Task

TASKS = [Task(instance_id="scratch-0", repo="o/r", problem_statement="fix")]


def _open(task, backend, limits, run_id):
    return ScratchEnvironment(task)


def _wait_for(condition, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_a_stale_group_from_task_order_is_redone_with_its_own_task():
    ordered = Task(instance_id="ordered-only", repo="o/r", problem_statement="fix")
    manager = RolloutManager(TASKS, lambda task: ScriptedPolicy(commands=2), grade=False, opener=_open, workers=1,
                             max_groups_ahead=2, max_staleness=0, task_order=itertools.repeat(ordered)).start()
    try:
        _wait_for(lambda: manager.stats["episodes"] >= 2)
        manager.update_policy()
        group = manager.next_group(timeout=30)
    finally:
        manager.close()
    assert manager.stats["dropped_stale"] >= 1
    assert group[0].instance_id == "ordered-only" and group[0].policy_version == 1
    assert group[0].group_id not in manager._group_tasks


def test_a_given_up_group_forgets_its_task_and_frees_one_slot():
    def crash(task):
        raise RuntimeError("policy failed to load")

    manager = RolloutManager(TASKS, crash, grade=False, opener=_open, workers=2, group_size=2, max_groups_ahead=2,
                             max_attempts=1).start()
    try:
        _wait_for(lambda: manager.stats["failed_samples"] >= 8)
    finally:
        manager.close()
    assert manager.free_group_slots <= 2, "each given-up group releases its slot once"
    assert manager.groups_ahead <= 2, "given-up groups leave no task behind"
