"""Rollout managers in Ray actors on a local Ray instance (in-memory environments)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rl_fixtures import ScratchEnvironment, ScriptedPolicy

from swerve.schema import Task

ray = pytest.importorskip("ray")

TASKS = [Task(instance_id=f"ray-{n}", repo="o/r", problem_statement="fix") for n in range(4)]


def scratch_opener(task, backend, limits, run_id):
    return ScratchEnvironment(task)


def scripted_policy(task):
    return ScriptedPolicy(commands=1)


@pytest.fixture(scope="module")
def local_ray():
    here = str(Path(__file__).resolve().parent)
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join([here, root, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def test_groups_come_from_every_actor_and_updates_reach_all(local_ray):
    from swerve.rl.ray_rollouts import RayRollouts

    with RayRollouts(TASKS, scripted_policy, nodes=2, spread=False, actor_cpus=0.5, group_size=2, workers=1,
                     grade=False, opener=scratch_opener) as rollouts:
        assert len(rollouts.stats()) == 2, "both actors are up"
        groups = [rollouts.next_group(timeout=120)]
        while {"ray-0", "ray-1"} - {g[0].instance_id for g in groups} and len(groups) < 200:
            groups.append(rollouts.next_group(timeout=120))
        versions = rollouts.update_policy()
        stats = rollouts.stats()
    assert versions == [1, 1]
    assert all(len(g) == 2 and len({r.instance_id for r in g}) == 1 for g in groups)
    assert {g[0].instance_id for g in groups} >= {"ray-0", "ray-1"}, "both actors (each with its own tasks) delivered"
    assert all(r.trajectory.exit_status == "submitted" for g in groups for r in g)
    assert sum(s["groups"] for s in stats) >= len(groups)
