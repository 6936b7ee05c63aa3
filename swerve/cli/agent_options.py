"""The `--config FILE` and `--set KEY=VALUE` options of `swerve run` and `swerve teach`:
an agent configuration file (swerve.agents.config) with the limit flags given explicitly on
the command line and the `--set` overrides applied on top, in that order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

CONFIG_OPTION = typer.Option(
    None, "--config", metavar="FILE",
    help="agent configuration YAML: prompt templates (Jinja), tools, parser, limits; keys left out keep "
         "the default (swerve/agents/configs/default.yaml; see docs/agents.md). Limit flags given on the "
         "command line override the file",
)
SET_OPTION = typer.Option(
    None, "--set", metavar="KEY=VALUE",
    help="override one configuration key, after --config and the limit flags (repeatable), e.g. "
         "--set limits.max_steps=10 --set parser=tool_calls --set tools=[bash,submit]",
)


def agent_config_from_cli(
    ctx: typer.Context, config: Path | None, overrides: list[str] | None, flags: dict[str, tuple[str, str, Any]]
):
    """The AgentConfig for this command. `flags` maps a limit name to (parameter, flag, value);
    only the flags the user actually gave count, so a file's limits are not hidden by the flags'
    defaults (which are the shipped default's limits)."""
    from swerve.agents.config import load_agent_config

    explicit = {
        name: (flag, value)
        for name, (parameter, flag, value) in flags.items()
        if _given(ctx, parameter)
    }
    return load_agent_config(config, overrides or (), limits=explicit)


def _given(ctx: typer.Context, parameter: str) -> bool:
    """Whether the user set `parameter` (command line or environment), not its default. Compared
    by name: typer may carry its own copy of click, whose ParameterSource is another enum."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
