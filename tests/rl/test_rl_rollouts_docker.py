"""The rollout manager on real toolz tasks in Docker, with the oracle policy."""

from __future__ import annotations

import time

import pytest
from rl_fixtures import toolz_tasks

from swerve.agents.policies.oracle import OraclePolicy
from swerve.rl.rollouts import RolloutManager

pytestmark = pytest.mark.docker


def _containers(client, run_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"swerve.run={run_id}"})


def test_oracle_groups_are_graded_and_a_killed_worker_leaks_nothing(docker_client):
    tasks = list(toolz_tasks().values())[:2]
    run_id = "test-rl-rollouts"
    manager = RolloutManager(tasks, lambda task: OraclePolicy(task), workers=2, group_size=2, max_groups_ahead=2,
                             backend="docker", run_id=run_id).start()
    try:
        first = manager.next_group(timeout=600)
        # The victim is a worker whose episode holds a container (a busy worker may still be
        # between taking its work and getting an environment): wait for that state.
        deadline = time.monotonic() + 300
        victim, victim_env = None, None
        while victim_env is None and time.monotonic() < deadline:
            for index in manager.busy_workers:
                victim, victim_env = index, manager._workers[index].env
                if victim_env is not None:
                    break
            else:
                time.sleep(0.05)
        assert victim_env is not None, "no worker ever held an environment"
        manager.kill_worker(victim)
        # The victim notices the kill at its next check (between turns, or when a command
        # in its closed container fails); wait for that, so close() cannot pre-empt it.
        deadline = time.monotonic() + 300
        while manager.stats["killed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = manager.next_group(timeout=600)
        names = {c.name for c in _containers(docker_client, run_id)}
        assert victim_env.info.extra["container"] not in names, "the killed episode's container is gone"
    finally:
        manager.close()
    assert manager.stats["killed"] == 1
    for group in (first, second):
        assert len(group) == 2 and len({r.instance_id for r in group}) == 1
        assert all(r.reward == 1.0 for r in group), [r.trajectory.exit_status for r in group]
        assert all(r.trajectory.grade.resolved for r in group)
    assert manager.stats["failed_samples"] == 0, "the killed sample was scheduled again, not dropped"
    assert manager.pool.reused >= 1, "environments were reset and reused"
    assert _containers(docker_client, run_id) == [], "no container outlives the manager"
