"""A policy that submits at once, leaving the repository untouched.

It is the floor of every benchmark: it must resolve nothing, so a run where it
resolves a task has a broken task or a broken grader.
"""

from __future__ import annotations

from typing import Any

from swerve.schema import Completion, ToolCall


class NoopPolicy:
    name = "noop"

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        return Completion(
            text="I will submit without changing anything.",
            tool_calls=[ToolCall(name="submit", arguments={}, id="call_submit")],
            finish_reason="tool_calls",
        )

    def describe(self) -> dict[str, Any]:
        return {"policy": "noop", "seed": None}
