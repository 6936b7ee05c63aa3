"""A Gym-style environment over one task, driven one assistant turn at a time.

`reset() -> (messages, tools, info)`, `step(turn) -> (observation_messages, reward,
done, truncated, info)`, `close()`. Each step is one `Episode.turn` of the agent loop
(swerve.agents.loop: parsing, tools, observation truncation, repeat, format-error and
step/token/time limits), so an RL rollout and a benchmark episode behave the same.

The container is started once and `reset()` puts the repository back to its base
commit (about 10 ms with Docker), so one SweEnv serves many episodes. When an
episode ends, the reward is computed by the evaluator in a fresh environment from
the final diff (swerve.rl.rewards); nothing the agent's container says is trusted.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from swerve.agents.config import resolve_agent_config
from swerve.agents.loop import Episode, EpisodeLimits
from swerve.environments.base import Limits
from swerve.harness.timeouts import TEST_RUN_TIMEOUT_S
from swerve.schema import Completion, Task, Trajectory

TRUNCATING_STATUSES = ("step_limit", "token_limit", "time_limit")


def episode_configuration(env_limits: Limits | None, agent: Any, limits: EpisodeLimits | None):
    """(environment limits, agent configuration, episode limits) of an RL episode, as SweEnv
    and RolloutManager both resolve them: the agent configuration as `swerve run --config`
    reads it (swerve.agents.config.resolve_agent_config), `limits` over its limits."""
    config = resolve_agent_config(agent)
    return env_limits or Limits(), config, limits or config.limits


class SweEnv:
    """One task, one (reused) environment, episodes driven by `step`.

    `reward` is a swerve.rl.rewards reward function (default: binary resolved);
    `grade=False` skips grading (reward 0, for mechanics and benchmarks).
    `tokenizer` turns on token-in-token-out bookkeeping in tokenizer mode
    (`info["prompt_token_ids"]` is what to generate from next); without one, turns
    carrying `prompt_token_ids` still build the token trajectory.
    `environment` lends an already open Environment (a warm pool's); SweEnv then
    resets it instead of opening its own and does not close it.
    `agent` is the episode configuration `swerve run --config` uses (an AgentConfig, the
    path of its YAML file, or None for the shipped default: prompts, tools, parser,
    limits; see swerve.agents.config.resolve_agent_config); `limits` overrides its limits.
    """

    def __init__(
        self,
        task: Task,
        *,
        backend: str = "auto",
        env_limits: Limits | None = None,
        limits: EpisodeLimits | None = None,
        agent: Any = None,
        reward: Any = None,
        grade: bool = True,
        grade_backend: str | None = None,
        grade_timeout_s: float = TEST_RUN_TIMEOUT_S,
        tokenizer: Any = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        run_id: str = "rl",
        environment: Any = None,
        policy_info: dict[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.backend = backend
        self.env_limits, self.agent, self.limits = episode_configuration(env_limits, agent, limits)
        self.reward_fn = reward
        self.grade = grade
        self.grade_backend = grade_backend or backend
        self.grade_timeout_s = grade_timeout_s
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.run_id = run_id
        self.policy_info = policy_info
        self._env = environment
        self._owns_env = environment is None
        self._episode: Episode | None = None
        self._recorder = None
        self._finished: Trajectory | None = None
        self.rollout_id = ""
        self.policy_version = 0

    @property
    def environment(self) -> Any:
        if self._env is None:
            from swerve.environments import open_environment

            self._env = open_environment(self.task, self.backend, self.env_limits, self.run_id)
        return self._env

    def reset(self, *, rollout_id: str | None = None, policy_version: int = 0,
              messages: list[dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """Start a new episode on a pristine repository; returns (messages, tools, info)."""
        from swerve.rl.tokens import TokenRecorder

        env = self.environment
        env.reset()
        episode = Episode(self.task, env, self.limits, policy_info=self.policy_info, agent=self.agent)
        opening = episode.start(messages)
        self._episode = episode
        self._finished = None
        self.rollout_id = rollout_id or uuid.uuid4().hex[:12]
        self.policy_version = policy_version
        self._recorder = TokenRecorder(self.rollout_id, self.tokenizer, chat_template_kwargs=self.chat_template_kwargs)
        prompt_ids = self._recorder.start(opening, episode.tools)
        info = {"instance_id": self.task.instance_id, "rollout_id": self.rollout_id, "step": 0}
        if prompt_ids is not None:
            info["prompt_token_ids"] = prompt_ids
        return opening, list(episode.tools), info

    def step(self, turn: str | Completion, *, policy_version: int | None = None,
             model_time_s: float | None = None) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        """Run one assistant turn; returns (observation_messages, reward, done, truncated, info).

        `done` means the agent ended the episode (submitted, or too many format errors
        or repeats); `truncated` means a limit did (steps, tokens, wall clock). The
        reward is 0 until the episode ends; then it is the graded reward, and
        `info["trajectory"]` holds the Trajectory (with `grade` and `reward`).
        """
        episode = self._episode
        if episode is None:
            raise RuntimeError("call reset() before step()")
        if self._finished is not None:
            raise RuntimeError("the episode is over; call reset() to start another")
        completion = Completion(text=turn) if isinstance(turn, str) else turn
        version = self.policy_version if policy_version is None else policy_version
        self._recorder.add_turn(completion.prompt_token_ids, completion.completion_token_ids,
                                completion.logprobs, version)
        index = len(episode.steps)
        before = len(episode.messages)
        ended = episode.turn(completion, model_time_s=model_time_s or 0.0)
        step = episode.steps[-1]
        step.policy_version = version
        added = episode.messages[before:]
        observation = [m for m in added if m.get("role") != "assistant"]
        status = ended or episode.limit_reached()
        info: dict[str, Any] = {"instance_id": self.task.instance_id, "rollout_id": self.rollout_id,
                                "step": index + 1, "format_error": step.format_error,
                                "action": step.action.model_dump() if step.action else None,
                                "messages": list(episode.messages)}
        if status is None:
            pending = self._recorder.add_observation(episode.messages[:before + 1], observation, episode.tools)
            if pending is not None:
                info["prompt_token_ids"] = self._recorder.next_prompt_ids
            return observation, 0.0, False, False, info
        trajectory = self._finish(status)
        info.update(exit_status=status, trajectory=trajectory, grade=trajectory.grade,
                    reward_info=trajectory.model_extra.get("reward_info"))
        return observation, float(trajectory.model_extra.get("reward", 0.0)), status not in TRUNCATING_STATUSES, \
            status in TRUNCATING_STATUSES, info

    def _finish(self, status: str) -> Trajectory:
        trajectory = self._episode.finish(status)
        trajectory.manifest.update(rollout_id=self.rollout_id, run_id=self.run_id)
        tokens = self._recorder.result()
        if tokens is not None:
            trajectory.tokens = tokens.to_dict()
        if self.grade:
            from swerve.rl.rewards import score_trajectory

            result = score_trajectory(self.task, trajectory, reward=self.reward_fn, backend=self.grade_backend,
                                      timeout_s=self.grade_timeout_s, run_id=self.run_id)
            trajectory.grade = result.grade
            trajectory.reward = result.value
            trajectory.reward_info = result.to_dict()
        else:
            trajectory.reward = 0.0
        self._finished = trajectory
        return trajectory

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far, as the policy should see it next."""
        return [] if self._episode is None else list(self._episode.messages)

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [] if self._episode is None else list(self._episode.tools)

    @property
    def token_trajectory(self):
        """The episode's TokenTrajectory (None when some turn came without token ids)."""
        return None if self._recorder is None else self._recorder.result()

    def close(self) -> None:
        """Close the environment this SweEnv opened (a lent one stays with its owner)."""
        env, self._env = self._env, None
        if env is not None and self._owns_env:
            env.close()

    def __enter__(self) -> "SweEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSweEnv:
    """SweEnv for async rollout code: each call runs in a worker thread."""

    def __init__(self, task: Task, **kwargs: Any) -> None:
        self.env = SweEnv(task, **kwargs)

    async def reset(self, **kwargs: Any):
        return await asyncio.to_thread(self.env.reset, **kwargs)

    async def step(self, turn: str | Completion, **kwargs: Any):
        return await asyncio.to_thread(self.env.step, turn, **kwargs)

    async def close(self) -> None:
        await asyncio.to_thread(self.env.close)

    async def __aenter__(self) -> "AsyncSweEnv":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
