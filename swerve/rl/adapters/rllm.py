"""rLLM adapter: an `rllm.environments.base.BaseEnv` whose episodes are swerve episodes.

rLLM's contract: `from_dict(info) -> env` (a staticmethod building one env from a
dataset row), `reset() -> (observation, info)`, `step(action) -> (observation, reward,
done, info)`, `close()`, and `is_multithread_safe()`. The row carries `task` inline
or `instance_id` + `tasks_path`, plus optional `backend`, `max_steps`, `reward`.
The observation is the loop's message list (the opening messages on reset, the new
tool/user messages after each step); the action is the model's text.

rLLM is not on the package index this project can reach, so the module imports without
it (falling back to a plain base class) and tests/rl/test_rl_adapters_contract.py
checks the documented interface.
"""

from __future__ import annotations

from typing import Any

from swerve.rl.adapters._config import episode_config
from swerve.rl.adapters._tasks import task_from_fields
from swerve.rl.adapters.skyrl import reward_by_name
from swerve.rl.gym_env import SweEnv

DEFAULT_MAX_STEPS = 30
"""Turns per episode when the trainer names neither max_steps nor an agent_config."""

try:
    from rllm.environments.base.base_env import BaseEnv
except ImportError:
    class BaseEnv:  # type: ignore[no-redef]
        """Stand-in with rLLM's shape, used when rLLM is not installed."""


class SwerveEnv(BaseEnv):
    def __init__(self, task: Any, *, backend: str = "auto", max_steps: int | None = None, reward: str | None = None,
                 grade: bool = True, environment: Any = None, run_id: str = "rllm", agent_config: Any = None) -> None:
        agent = episode_config(agent_config, max_steps, DEFAULT_MAX_STEPS)
        self.env = SweEnv(task, backend=backend, agent=agent, reward=reward_by_name(reward), grade=grade,
                          environment=environment, run_id=run_id)

    def reset(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        messages, tools, info = self.env.reset()
        return messages, {"tools": tools, **info}

    def step(self, action: Any) -> tuple[list[dict[str, Any]], float, bool, dict[str, Any]]:
        text = getattr(action, "action", action)
        observation, reward, done, truncated, info = self.env.step(text if isinstance(text, str) else str(text))
        info = {key: value for key, value in info.items() if key not in ("messages", "trajectory", "grade")}
        info["truncated"] = truncated
        return observation, reward, bool(done or truncated), info

    def close(self) -> None:
        self.env.close()

    @staticmethod
    def from_dict(info: dict[str, Any]) -> "SwerveEnv":
        task = task_from_fields(info)
        options = {key: info[key] for key in ("backend", "max_steps", "reward", "grade", "run_id", "agent_config")
                   if key in info}
        return SwerveEnv(task, environment=info.get("environment"), **options)

    @staticmethod
    def is_multithread_safe() -> bool:
        """Each env owns its own container, so rLLM may step many from threads."""
        return True
