"""A tiny synthetic environment with the same API as `SweEnv`, for checking that a
trainer learns: the task names a tool and an argument, and the reply earns 1 when
it calls exactly that tool with exactly that argument (parsed by the agent loop's
own tool-call parser), 0.5 for the right tool with a wrong argument, else 0.

It needs no container, so a learning curve can be measured in seconds on a CPU.
"""

from __future__ import annotations

import random
from typing import Any

from swerve.agents.tools import parse_tool_call_blocks
from swerve.schema import Completion


def choice_tools(names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"the {name} tool",
                "parameters": {
                    "type": "object",
                    "properties": {"target": {"type": "string", "description": "what to act on"}},
                    "required": ["target"],
                },
            },
        }
        for name in names
    ]


class ToolChoiceEnv:
    """reset() -> (messages, tools, info); step(turn) -> (observation, reward, done, truncated, info)."""

    def __init__(self, tool_names: list[str], targets: list[str], *, task_index: int | None = None, seed: int = 0) -> None:
        if not tool_names or not targets:
            raise ValueError("ToolChoiceEnv needs at least one tool name and one target")
        self.tool_names = list(tool_names)
        self.targets = list(targets)
        self.rng = random.Random(seed)
        self.task_index = task_index
        self.goal: tuple[str, str] | None = None

    def reset(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        index = self.task_index if self.task_index is not None else self.rng.randrange(len(self.tool_names))
        self.goal = (self.tool_names[index % len(self.tool_names)], self.targets[index % len(self.targets)])
        messages = [
            {"role": "system", "content": "You call exactly one tool."},
            {"role": "user", "content": f"Call {self.goal[0]} on {self.goal[1]}."},
        ]
        return messages, choice_tools(self.tool_names), {"goal": self.goal}

    def step(self, turn: str | Completion):
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        text = turn.text if isinstance(turn, Completion) else turn
        calls, error = parse_tool_call_blocks(text)
        reward = 0.0
        if calls and not error:
            call = calls[0]
            if call.name == self.goal[0]:
                reward = 1.0 if call.arguments.get("target") == self.goal[1] else 0.5
        info = {"goal": self.goal, "format_error": error, "parsed": [c.model_dump() for c in calls]}
        return [], reward, True, False, info
