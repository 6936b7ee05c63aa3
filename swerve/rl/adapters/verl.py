"""verl adapter: an agent loop (`verl.experimental.agent_loop.AgentLoopBase`) whose
episodes are swerve episodes, token-in-token-out.

verl creates one loop per sample and awaits `run(sampling_params, **row_fields)`; the
loop generates through `self.server_manager.generate(request_id=..., prompt_ids=...,
sampling_params=...)` and returns an `AgentLoopOutput` with `prompt_ids`,
`response_ids` (generated and observation tokens), `response_mask` (1 generated,
0 observation), `response_logprobs`, `reward_score` and `num_turns`. Register it in
an agent-loop config file (`name: swerve`, `_target_: swerve.rl.adapters.verl.SwerveAgentLoop`)
and put `agent_name: swerve` plus `task` or `instance_id`/`tasks_path` in the dataset.

verl could not be installed here (it pins an older transformers than this project's
environment), so the module imports without it and the contract test drives the loop
with a stand-in server manager built to verl's documented interface.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from swerve.rl.adapters._config import episode_config
from swerve.agents.policies.chat_tokens import completion_text, stop_token_ids
from swerve.rl.adapters._tasks import task_from_fields
from swerve.rl.adapters.skyrl import reward_by_name
from swerve.rl.gym_env import SweEnv
from swerve.schema import Completion

DEFAULT_MAX_STEPS = 30
"""Turns per episode when the trainer names neither max_steps nor an agent_config."""

try:
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
except ImportError:
    AgentLoopOutput = None

    class AgentLoopBase:  # type: ignore[no-redef]
        """Stand-in with verl's constructor, used when verl is not installed."""

        def __init__(self, trainer_config: Any, server_manager: Any, tokenizer: Any, processor: Any = None,
                     **kwargs: Any) -> None:
            self.config = getattr(trainer_config, "config", trainer_config)
            self.server_manager = server_manager
            self.tokenizer = tokenizer
            self.processor = processor

    def register(name: str):
        return lambda cls: cls


def _token_output(output: Any) -> tuple[list[int], list[float] | None]:
    """verl's server manager returns a TokenOutput (`token_ids`, `log_probs`) or, in older releases, ids."""
    if isinstance(output, (list, tuple)):
        return [int(i) for i in output], None
    ids = getattr(output, "token_ids", None)
    if ids is None and isinstance(output, dict):
        return [int(i) for i in output["token_ids"]], output.get("log_probs")
    logprobs = getattr(output, "log_probs", None)
    return [int(i) for i in ids], (list(logprobs) if logprobs is not None else None)


def _agent_loop_output(**fields: Any) -> Any:
    if AgentLoopOutput is None:
        return dict(fields)
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics

    return AgentLoopOutput(metrics=AgentLoopMetrics(), **fields)


@register("swerve")
class SwerveAgentLoop(AgentLoopBase):
    """Runs one swerve episode per sample through verl's inference servers."""

    backend = "auto"
    max_steps: int | None = None
    agent_config: Any = None
    reward = None
    environment: Any = None

    async def run(self, sampling_params: dict[str, Any], **fields: Any) -> Any:
        task = task_from_fields(fields)
        env = SweEnv(task, backend=fields.get("backend", self.backend),
                     agent=episode_config(fields.get("agent_config", self.agent_config),
                                          fields.get("max_steps", self.max_steps), DEFAULT_MAX_STEPS),
                     reward=reward_by_name(fields.get("reward", self.reward)), tokenizer=self.tokenizer,
                     environment=fields.get("environment", self.environment), run_id="verl")
        request_id = uuid.uuid4().hex
        stops = stop_token_ids(self.tokenizer)
        try:
            _, _, info = await asyncio.to_thread(env.reset, rollout_id=request_id)
            done = truncated = False
            reward = 0.0
            turns = 0
            while not (done or truncated):
                output = await self.server_manager.generate(request_id=request_id, prompt_ids=info["prompt_token_ids"],
                                                            sampling_params=sampling_params)
                ids, logprobs = _token_output(output)
                text = completion_text(self.tokenizer, ids, stops)
                completion = Completion(text=text, prompt_token_ids=info["prompt_token_ids"],
                                        completion_token_ids=ids, logprobs=logprobs)
                _, reward, done, truncated, info = await asyncio.to_thread(env.step, completion)
                turns += 1
            tokens = env.token_trajectory
        finally:
            await asyncio.to_thread(env.close)
        return _agent_loop_output(
            prompt_ids=tokens.prompt_ids,
            response_ids=tokens.completion_ids,
            response_mask=tokens.loss_mask,
            response_logprobs=tokens.logprobs,
            reward_score=reward,
            num_turns=2 * turns + 1,
            extra_fields={"exit_status": info["exit_status"], "reward_info": info.get("reward_info"),
                          "rollout_id": tokens.rollout_id},
        )
