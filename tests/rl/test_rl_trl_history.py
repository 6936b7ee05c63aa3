"""SwerveRollouts keeps a bounded history of episodes (no TRL or containers needed)."""

from __future__ import annotations

from swerve.rl.adapters.trl import SwerveRollouts
from swerve.schema import Task


def test_history_keeps_only_the_latest_episodes():
    rollouts = SwerveRollouts([Task(instance_id="t-1", repo="o/r", problem_statement="fix")], history_size=3)
    rollouts._remember([{"n": 0}, {"n": 1}])
    rollouts._remember([{"n": 2}, {"n": 3}])
    assert [e["n"] for e in rollouts.history] == [1, 2, 3]
    assert rollouts.history[-2:] == [{"n": 2}, {"n": 3}]
    rollouts.close()
