"""The Policy protocol: given the conversation and the tool schemas, produce the
next assistant turn (text, parsed tool calls, and token ids/logprobs when the
backend can give them)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from swerve.schema import Completion


@runtime_checkable
class Policy(Protocol):
    name: str

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        """Return the next assistant turn for `messages` (OpenAI chat format)."""

    def describe(self) -> dict[str, Any]:
        """Settings for the trajectory manifest (model, sampling parameters, seed)."""
