"""TRL adapter: a `rollout_func` for `trl.GRPOTrainer` whose rollouts are swerve episodes.

    rollouts = SwerveRollouts(tasks, backend="docker")
    trainer = GRPOTrainer(model=..., reward_funcs=swerve_reward, train_dataset=rollouts.dataset(),
                          rollout_func=rollouts, args=GRPOConfig(num_generations=2, ...))

TRL calls `rollouts(prompts, trainer)` with its per-process slice of prompts (each
prompt already repeated `num_generations` times, adjacent), and expects one
completion per prompt: `prompt_ids`, `completion_ids`, `logprobs`, plus any extra
fields, which it hands to the reward functions. Each episode is generated with the
trainer's own model from the environment's exact token sequence (token-in-token-out):
`completion_ids` are all turns after the opening prompt, `env_mask` (TRL's mask for
environment feedback) is 1 on sampled tokens and 0 on observations and template glue,
and `logprobs` are the sampling logprobs (0 on masked tokens). The reward is computed
by the evaluator in a fresh environment and passed through as `swerve_reward`.
Environments stay open between steps (a warm `EnvPool`, reset between episodes); with `workers > 1` the
episodes of a batch run in parallel threads (environment steps and grading overlap;
generation is serialised on the one model). Call `close()` when training ends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swerve.agents.loop import EpisodeLimits, build_messages
from swerve.environments.base import Limits
from swerve.environments.warm_pool import EnvPool
from swerve.rl.adapters._config import episode_config
from swerve.rl.gym_env import SweEnv
from swerve.schema import DEFAULT_WORKDIR, Task

DEFAULT_MAX_STEPS = 4
"""Turns per episode when neither `limits` nor `agent` is given (GRPO prompts stay short)."""


def _prompt_key(prompt: list[dict[str, Any]]) -> str:
    return json.dumps([(m.get("role"), m.get("content")) for m in prompt], sort_keys=True)


def swerve_reward(completions: list[Any], swerve_reward: list[float], **kwargs: Any) -> list[float]:
    """TRL reward function: the graded reward each swerve episode earned."""
    return [float(value) for value in swerve_reward]


class SwerveRollouts:
    """The rollout function (callable) plus the dataset that goes with it; `history`
    keeps the latest `history_size` episodes (training row, trajectory, reward).
    `agent` is the episode configuration (an AgentConfig or its YAML path: prompts, tools,
    parser, limits; default: the shipped one with DEFAULT_MAX_STEPS turns); `limits`
    overrides its limits."""

    def __init__(
        self,
        tasks: Iterable[Task],
        *,
        backend: str = "auto",
        limits: EpisodeLimits | None = None,
        agent: Any = None,
        env_limits: Limits | None = None,
        reward: Any = None,
        grade: bool = True,
        grade_timeout_s: float = 600.0,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        run_id: str = "trl",
        workers: int = 1,
        history_size: int = 256,
    ) -> None:
        self.tasks = {task.instance_id: task for task in tasks}
        if not self.tasks:
            raise ValueError("SwerveRollouts needs at least one task")
        self.backend = backend
        self.agent = episode_config(agent, None, DEFAULT_MAX_STEPS)
        self.limits = limits or self.agent.limits
        self.env_limits = env_limits
        self.reward = reward
        self.grade = grade
        self.grade_timeout_s = grade_timeout_s
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.run_id = run_id
        self.workers = max(1, workers)
        self._by_prompt = {_prompt_key(self.prompt_for(task)): task for task in self.tasks.values()}
        self.pool = EnvPool(backend=backend, limits=env_limits, run_id=run_id, max_idle_per_task=self.workers)
        self._generate_lock = threading.Lock()
        self.history_size = max(0, history_size)
        self.history: list[dict[str, Any]] = []  # the latest `history_size` episodes, oldest first

    def prompt_for(self, task: Task) -> list[dict[str, Any]]:
        """The opening messages of an episode on `task` (what the dataset's `prompt` holds)."""
        return build_messages(task, task.workdir or DEFAULT_WORKDIR, self.limits, self.agent)

    def dataset(self):
        """A `datasets.Dataset` with one row per task: `prompt` (messages) and `instance_id`."""
        from datasets import Dataset

        return Dataset.from_list([{"prompt": self.prompt_for(task), "instance_id": task.instance_id}
                                  for task in self.tasks.values()])

    def _task_for(self, prompt: list[dict[str, Any]]) -> Task:
        task = self._by_prompt.get(_prompt_key(prompt))
        if task is None:
            raise ValueError("rollout_func got a prompt that is not one of SwerveRollouts.dataset()'s rows; "
                             "train on rollouts.dataset() (the prompt identifies the task)")
        return task

    def run_episode(self, task: Task, model: Any, tokenizer: Any, policy_version: int = 0) -> dict[str, Any]:
        """One episode generated by `model`; returns its training row and bookkeeping."""
        from swerve.rl.generation import generate_turn

        environment = self.pool.acquire(task, reset=False)
        env = SweEnv(task, backend=self.backend, limits=self.limits, agent=self.agent, reward=self.reward,
                     grade=self.grade,
                     grade_timeout_s=self.grade_timeout_s, tokenizer=tokenizer, run_id=self.run_id,
                     environment=environment, policy_info={"policy": "trl-grpo"})
        ok = False
        try:
            _, _, info = env.reset(policy_version=policy_version)
            sampled: list[list[int]] = []
            done = truncated = False
            while not (done or truncated):
                with self._generate_lock:
                    completion = generate_turn(model, tokenizer, info["prompt_token_ids"],
                                               max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                               top_p=self.top_p)
                sampled.append(list(completion.completion_token_ids))
                _, reward, done, truncated, info = env.step(completion)
            tokens = env.token_trajectory
            ok = True
        finally:
            if ok:
                self.pool.release(task, environment)
            else:
                self.pool.discard(environment)
        trajectory = info["trajectory"]
        return {"tokens": tokens, "reward": reward, "trajectory": trajectory, "sampled": sampled,
                "exit_status": info["exit_status"], "instance_id": task.instance_id}

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
        tokenizer = getattr(trainer, "processing_class", None)
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        version = int(getattr(getattr(trainer, "state", None), "global_step", 0) or 0)
        out: dict[str, list[Any]] = {key: [] for key in (
            "prompt_ids", "completion_ids", "logprobs", "env_mask", "swerve_reward", "swerve_resolved",
            "swerve_exit_status", "swerve_rollout_id", "swerve_tampered")}
        tasks = [self._task_for(prompt) for prompt in prompts]
        if self.workers == 1:
            episodes = [self.run_episode(task, model, tokenizer, version) for task in tasks]
        else:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="swerve-trl") as pool:
                episodes = list(pool.map(lambda task: self.run_episode(task, model, tokenizer, version), tasks))
        for episode in episodes:
            tokens = episode["tokens"]
            info = episode["trajectory"].model_extra.get("reward_info") or {}
            out["prompt_ids"].append(tokens.prompt_ids)
            out["completion_ids"].append(tokens.completion_ids)
            out["logprobs"].append(tokens.logprobs)
            out["env_mask"].append(tokens.loss_mask)
            out["swerve_reward"].append(float(episode["reward"]))
            out["swerve_resolved"].append(bool(info.get("resolved", False)))
            out["swerve_exit_status"].append(episode["exit_status"])
            out["swerve_rollout_id"].append(tokens.rollout_id)
            out["swerve_tampered"].append(bool(info.get("tampered", False)))
        self._remember(episodes)
        return out

    def _remember(self, episodes: list[dict[str, Any]]) -> None:
        self.history.extend(episodes)
        del self.history[:max(0, len(self.history) - self.history_size)]

    def close(self) -> None:
        """Close every environment the rollouts opened."""
        self.pool.close()

    def __enter__(self) -> "SwerveRollouts":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
