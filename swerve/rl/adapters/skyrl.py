"""SkyRL adapter: a `skyrl_gym` BaseTextEnv whose episodes are swerve episodes.

SkyRL builds one env per sample with `skyrl_gym.make(name, env_config=..., extras=...)`,
calls `init(prompt)` for the opening conversation, then `step(llm_text)` per turn and
expects `{"observations", "reward", "done", "metadata"}`. Register it once:

    import skyrl_gym
    skyrl_gym.register(id="swerve", entry_point="swerve.rl.adapters.skyrl:SwerveTextEnv")

`extras` is the dataset row (`task` inline, or `instance_id` + `tasks_path`);
`env_config` may set backend, max_steps, reward ("binary" or "partial") and grade.
The reward arrives on the final step, graded by the evaluator in a fresh container.
"""

from __future__ import annotations

from typing import Any

from swerve.rl.adapters._config import episode_config
from swerve.rl.adapters._tasks import task_from_fields
from swerve.rl.gym_env import SweEnv

DEFAULT_MAX_STEPS = 30
"""Turns per episode when the trainer names neither max_steps nor an agent_config."""

try:
    from skyrl_gym.envs.base_text_env import BaseTextEnv
except ImportError:  # the contract is documented in docs/rl.md; the adapter still imports without SkyRL
    class BaseTextEnv:  # type: ignore[no-redef]
        def __init__(self) -> None:
            self.turns = 0
            self.max_turns = 1


def reward_by_name(name: str | None):
    """`binary`, `partial` or None (binary)."""
    from swerve.rl.rewards import binary_reward, partial_credit_reward

    choices = {None: binary_reward, "binary": binary_reward, "partial": partial_credit_reward}
    if name not in choices:
        raise ValueError(f"reward {name!r}: use binary or partial")
    return choices[name]


def _config_get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    getter = getattr(config, "get", None)
    return getter(key, default) if getter else getattr(config, key, default)


class SwerveTextEnv(BaseTextEnv):
    """One swerve task as a SkyRL text environment (text in, OpenAI messages out)."""

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None, *, environment: Any = None) -> None:
        super().__init__()
        extras = dict(extras or {})
        task = task_from_fields(extras, _config_get(env_config, "tasks_path"))
        agent = episode_config(_config_get(env_config, "agent_config"), _config_get(env_config, "max_steps"),
                               DEFAULT_MAX_STEPS)
        self.max_turns = agent.limits.max_steps
        self.env = SweEnv(task, backend=_config_get(env_config, "backend", "auto"), agent=agent,
                          reward=reward_by_name(_config_get(env_config, "reward")),
                          grade=bool(_config_get(env_config, "grade", True)), environment=environment,
                          run_id=_config_get(env_config, "run_id", "skyrl"))

    def init(self, prompt: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Ignore the dataset's placeholder prompt: the episode opens with the loop's messages."""
        messages, tools, info = self.env.reset()
        self.turns = 0
        return messages, {"tools": tools, **info}

    def step(self, action: str) -> dict[str, Any]:
        self.turns += 1
        observations, reward, done, truncated, info = self.env.step(action)
        metadata = {key: info[key] for key in ("instance_id", "rollout_id", "step", "format_error") if key in info}
        if done or truncated:
            metadata.update(exit_status=info["exit_status"], reward_info=info.get("reward_info"))
            observations = []
        return {"observations": observations, "reward": reward, "done": bool(done or truncated),
                "metadata": metadata, "postprocessed_action": None}

    def close(self) -> None:
        self.env.close()
