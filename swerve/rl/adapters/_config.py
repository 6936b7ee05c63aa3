"""The episode configuration of a trainer adapter: the same AgentConfig `swerve run
--config` uses (prompts, tools, parser, limits), named in the trainer's own config."""

from __future__ import annotations

from typing import Any

from swerve.agents.config import AgentConfig, resolve_agent_config


def episode_config(agent_config: Any, max_steps: Any, default_max_steps: int) -> AgentConfig:
    """`agent_config` (an AgentConfig, the path of its YAML file, or None for the shipped
    default) with its step limit replaced by `max_steps` when the trainer gives one; with
    neither, the default configuration with the adapter's `default_max_steps`."""
    if max_steps is None and agent_config is None:
        max_steps = default_max_steps
    return resolve_agent_config(agent_config, max_steps=None if max_steps is None else int(max_steps))
