"""Replay a recorded trajectory: the same assistant text and tool calls, turn by turn.

Used to check that a trajectory is complete (replaying it in a fresh environment
reproduces its patch) and to re-grade or re-render old runs. Token ids and
logprobs are replayed too, so RL code can treat a replay like the original.
When the recording runs out, the policy submits.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from swerve.schema import Completion, Step, ToolCall, Trajectory


class ReplayPolicy:
    name = "replay"

    def __init__(self, trajectory: Trajectory) -> None:
        self.trajectory = trajectory
        self._cursor = 0

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        if _opening(messages):
            self._cursor = 0
        steps = self.trajectory.steps
        if self._cursor >= len(steps):
            return Completion(
                text="(replay exhausted: submitting)",
                tool_calls=[ToolCall(name="submit", arguments={}, id="call_replay_end")],
            )
        step = steps[self._cursor]
        self._cursor += 1
        return completion_from_step(step)

    def describe(self) -> dict[str, Any]:
        return {
            "policy": "replay",
            "replayed_instance_id": self.trajectory.instance_id,
            "replayed_policy": self.trajectory.manifest.get("policy", {}),
            "seed": self.trajectory.manifest.get("seed"),
        }


def completion_from_step(step: Step) -> Completion:
    """The completion that produced `step`, as far as the trajectory recorded it."""
    native = [ToolCall.model_validate(call) for call in step.native_tool_calls or []]
    return Completion(
        text=step.assistant,
        tool_calls=native,
        prompt_token_ids=step.prompt_token_ids,
        completion_token_ids=step.completion_token_ids,
        logprobs=step.logprobs,
        finish_reason=step.finish_reason,
        usage=step.usage,
    )


def _opening(messages: list[dict[str, Any]]) -> bool:
    return not any(message.get("role") == "assistant" for message in messages)


def load_replay_policy(path: str | os.PathLike, instance_id: str) -> ReplayPolicy:
    """The ReplayPolicy for `instance_id` from a trajectories JSONL file.

    A batch asks once per task: the file is parsed once and looked up after that,
    until it changes on disk.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat() if resolved.exists() else None
    version = (stat.st_mtime_ns, stat.st_size) if stat else None
    trajectory = _trajectories_by_instance(resolved, version).get(instance_id)
    if trajectory is None:
        raise ValueError(f"{path} has no trajectory for {instance_id}; replay a file recorded on the same tasks")
    return ReplayPolicy(trajectory)


@functools.lru_cache(maxsize=1)
def _trajectories_by_instance(path: Path, version: tuple[int, int] | None) -> dict[str, Trajectory]:
    """The file's trajectories by instance id; `version` (mtime, size) makes a changed file read again."""
    from swerve.agents.trajectory import read_trajectories

    return {trajectory.instance_id: trajectory for trajectory in read_trajectories(path)}
