"""Agent configuration files: the prompts, tools, parser and limits of an episode, in one YAML file.

`load_agent_config(path, overrides)` reads a file (any key left out keeps the shipped default,
swerve/agents/configs/default.yaml) and applies `KEY=VALUE` overrides such as
`limits.max_steps=10`; every problem (missing file, bad YAML, unknown key, wrong type, template
error) is an `AgentConfigError` of one line naming the file and the key. `AgentConfig.render`
builds the opening system and user messages of an episode from the Jinja templates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from swerve.agents.tools import TOOL_NAMES, TOOLS, format_help
from swerve.errors import SwerveError
from swerve.schema import Task

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"
PARSERS = ("auto", "tool_calls")
TEMPLATE_KEYS = ("system_template", "instance_template")
KNOWN_KEYS = (*TEMPLATE_KEYS, "tools", "parser", "limits")


class AgentConfigError(SwerveError, ValueError):
    """An agent configuration file or override that cannot be used (one line: file, key, fix)."""


@dataclass(frozen=True)
class AgentConfig:
    """What an episode tells the model and how long it may go on.

    `limits` is a swerve.agents.loop.EpisodeLimits; `source` names where the
    configuration came from ("default" or the file's path) for the trajectory manifest.
    """

    system_template: str
    instance_template: str
    tools: tuple[str, ...]
    parser: str
    limits: Any
    source: str = "default"
    overrides: tuple[str, ...] = field(default=())

    def tool_schemas(self) -> list[dict[str, Any]]:
        """Fresh copies of the enabled tools' OpenAI function schemas, in the configured order."""
        by_name = {tool["function"]["name"]: tool for tool in TOOLS}
        return [json.loads(json.dumps(by_name[name])) for name in self.tools]

    @property
    def fenced_bash(self) -> bool:
        """Whether a fenced ```bash block counts as an action (parser `auto` with bash enabled)."""
        return self.parser == "auto" and "bash" in self.tools

    def render(self, task: Task, workdir: str, limits: Any = None) -> list[dict[str, Any]]:
        """The system and user messages that open an episode on `task` (limits default to this config's)."""
        variables = template_variables(task, workdir, limits or self.limits, self.tools)
        system = _compile(self.system_template).render(variables)
        user = _compile(self.instance_template).render(variables)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def describe(self) -> dict[str, Any]:
        """Where the configuration came from and a hash of its prompts, tools and parser (for manifests)."""
        digest = hashlib.sha256(
            json.dumps([self.system_template, self.instance_template, list(self.tools), self.parser]).encode()
        ).hexdigest()
        return {"source": self.source, "overrides": list(self.overrides), "sha256": digest}


def template_variables(task: Task, workdir: str, limits: Any, tools: tuple[str, ...]) -> dict[str, Any]:
    """The variables every template sees (documented in configs/default.yaml and docs/agents.md)."""
    return {
        "task": task,
        "instance_id": task.instance_id,
        "repo": task.repo,
        "workdir": workdir,
        "base_commit": task.base_commit,
        "problem_statement": task.problem_statement.strip() or "(no problem statement given)",
        "hints_text": task.hints_text,
        "max_steps": limits.max_steps,
        "limits": limits,
        "tools": list(tools),
        "format_help": format_help(tools),
    }


@lru_cache(maxsize=1)
def default_agent_config() -> AgentConfig:
    """The shipped default (swerve/agents/configs/default.yaml), loaded once."""
    return _build(_read_yaml(DEFAULT_CONFIG), {}, source="default", where=str(DEFAULT_CONFIG), overrides=())


def load_agent_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    limits: dict[str, tuple[str, Any]] | None = None,
) -> AgentConfig:
    """The default, updated by the YAML file at `path` (if any), then by `limits`
    (`{"max_steps": ("--max-steps", 10)}`: command-line flags, named in errors), then by
    `KEY=VALUE` overrides such as `limits.max_steps=10`."""
    overrides = tuple(overrides or ())
    where = str(path) if path is not None else "--set"
    data = _read_yaml(Path(path)) if path is not None else {}
    flags = {f"limits.{name}": (flag, value) for name, (flag, value) in (limits or {}).items()}
    updates = _parse_overrides(overrides)
    if path is None and not updates and not flags:
        return default_agent_config()
    return _build(data, updates, source=str(path) if path is not None else "default", where=where,
                  overrides=overrides, flags=flags)


def resolve_agent_config(
    agent: AgentConfig | str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    max_steps: int | None = None,
) -> AgentConfig:
    """The one episode configuration every driver of the loop uses (`swerve run`, SweEnv,
    RolloutManager, the trainer adapters), from what the caller has: an AgentConfig, the
    path of a YAML file (with `KEY=VALUE` overrides), or None for the shipped default.
    `max_steps`, when given, replaces the configuration's step limit (a trainer's turn
    budget); the prompts, tools, parser and other limits stay the configuration's."""
    if isinstance(agent, AgentConfig):
        if overrides:
            raise AgentConfigError(f"--set {overrides[0]}: overrides apply to a configuration file; "
                                   "pass the file's path instead of an AgentConfig")
        config = agent
    else:
        config = load_agent_config(agent, overrides)
    if max_steps is None or max_steps == config.limits.max_steps:
        return config
    checked = _check_limit("max_steps", "max_steps", max_steps, type(config.limits))
    return dataclasses.replace(config, limits=dataclasses.replace(config.limits, max_steps=checked))


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise AgentConfigError(f"agent config {path} does not exist; give the path of a YAML file "
                               f"(start from a copy of {DEFAULT_CONFIG})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise AgentConfigError(f"agent config {path} is not valid YAML: {detail}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AgentConfigError(f"agent config {path} must be a mapping of keys ({', '.join(KNOWN_KEYS)}), "
                               f"not a {type(data).__name__}")
    return data


def _parse_overrides(overrides: tuple[str, ...]) -> dict[str, tuple[str, Any]]:
    """`{"limits.max_steps": ("limits.max_steps=10", 10)}`; values are read as YAML scalars or lists."""
    import yaml

    updates: dict[str, tuple[str, Any]] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AgentConfigError(f"--set {item}: write KEY=VALUE, e.g. --set limits.max_steps=10")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        updates[key] = (item, value)
    return updates


def _build(data: dict[str, Any], updates: dict[str, tuple[str, Any]], *, source: str, where: str,
           overrides: tuple[str, ...], flags: dict[str, tuple[str, Any]] | None = None) -> AgentConfig:
    from swerve.agents.loop import EpisodeLimits

    base = {} if source == "default" and where == str(DEFAULT_CONFIG) else _as_dict(default_agent_config())
    values = dict(base)
    limits = dict(base.get("limits", {}))
    limit_names = [f.name for f in dataclasses.fields(EpisodeLimits)]
    entries = [(where, key, value) for key, value in data.items()]
    entries += [(flag, key, value) for key, (flag, value) in (flags or {}).items()]
    entries += [(f"--set {item}", key, value) for key, (item, value) in updates.items()]
    for origin, key, value in entries:
        key = str(key)
        if key == "limits" and isinstance(value, dict):
            for name, limit in value.items():
                limits[_limit_name(origin, f"limits.{name}", limit_names)] = limit
        elif key == "limits":
            raise AgentConfigError(f"{origin}: limits must be a mapping of {', '.join(limit_names)}")
        elif key.startswith("limits."):
            limits[_limit_name(origin, key, limit_names)] = value
        elif key in KNOWN_KEYS:
            values[key] = value
        else:
            raise AgentConfigError(f"{origin}: unknown key {key!r}; the keys are {', '.join(KNOWN_KEYS)}, "
                                   f"limits.<{'|'.join(limit_names)}>")
    origin_of = {key: origin for origin, key, _ in entries}
    for name in TEMPLATE_KEYS:
        if not isinstance(values.get(name), str):
            raise AgentConfigError(f"{origin_of.get(name, where)}: {name} must be a string (a Jinja template)")
    tools = _tools(origin_of.get("tools", where), values.get("tools"))
    parser = values.get("parser")
    if parser not in PARSERS:
        raise AgentConfigError(f"{origin_of.get('parser', where)}: parser {parser!r} is not known; "
                               f"use one of {', '.join(PARSERS)}")
    checked = {name: _check_limit(_origin_of_limit(entries, name, where), name, limits[name], EpisodeLimits)
               for name in limits}
    config = AgentConfig(
        system_template=values["system_template"], instance_template=values["instance_template"],
        tools=tools, parser=parser, limits=EpisodeLimits(**checked), source=source, overrides=overrides,
    )
    _check_templates(config, origin_of, where)
    return config


def _as_dict(config: AgentConfig) -> dict[str, Any]:
    return {
        "system_template": config.system_template, "instance_template": config.instance_template,
        "tools": list(config.tools), "parser": config.parser, "limits": dataclasses.asdict(config.limits),
    }


def _limit_name(origin: str, dotted: str, limit_names: list[str]) -> str:
    name = dotted.split(".", 1)[1]
    if name not in limit_names:
        raise AgentConfigError(f"{origin}: unknown key {dotted!r}; the limits are {', '.join(limit_names)}")
    return name


def _origin_of_limit(entries: list[tuple[str, str, Any]], name: str, where: str) -> str:
    origin = where
    for entry_origin, key, value in entries:
        if key == f"limits.{name}" or (key == "limits" and isinstance(value, dict) and name in value):
            origin = entry_origin
    return origin


def _check_limit(origin: str, name: str, value: Any, limits_class: type) -> Any:
    """`value` converted to the limit's type, or an error naming the key and the type wanted."""
    default = next(f.default for f in dataclasses.fields(limits_class) if f.name == name)
    optional = name in ("max_total_tokens", "wall_clock_s")
    key = f"limits.{name}"
    if value is None:
        if optional:
            return None
        raise AgentConfigError(f"{origin}: {key} needs a value (null is only allowed for "
                               "max_total_tokens and wall_clock_s)")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise AgentConfigError(f"{origin}: {key} must be true or false, not {value!r}")
        return value
    wants_int = name in ("max_steps", "max_total_tokens", "max_repeated_actions", "max_format_errors",
                         "observation_limit_bytes")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (wants_int and not isinstance(value, int)):
        kind = "an integer" if wants_int else "a number"
        raise AgentConfigError(f"{origin}: {key} must be {kind}, not {value!r}")
    minimum = 1 if name in ("max_steps", "max_format_errors", "max_total_tokens") else 0
    if value < minimum:
        raise AgentConfigError(f"{origin}: {key} must be at least {minimum}, not {value!r}")
    return int(value) if wants_int else float(value)


def _tools(origin: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise AgentConfigError(f"{origin}: tools must be a non-empty list of tool names ({', '.join(TOOL_NAMES)})")
    for name in value:
        if name not in TOOL_NAMES:
            raise AgentConfigError(f"{origin}: tools: {name!r} is not a tool; the tools are {', '.join(TOOL_NAMES)}")
    return tuple(dict.fromkeys(value))


def _check_templates(config: AgentConfig, origin_of: dict[str, str], where: str) -> None:
    """Compile both templates and render them for a sample task, so that syntax errors and
    unknown variables surface now, not in the middle of a run."""
    import jinja2

    sample = Task(instance_id="owner__repo-1", repo="owner/repo", problem_statement="sample issue")
    variables = template_variables(sample, "/testbed", config.limits, config.tools)
    for name in TEMPLATE_KEYS:
        origin = origin_of.get(name, where)
        text = getattr(config, name)
        try:
            _compile(text).render(variables)
        except jinja2.TemplateSyntaxError as exc:
            raise AgentConfigError(f"{origin}: {name}: template error on line {exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise AgentConfigError(f"{origin}: {name}: {exc.message} (the variables are "
                                   f"{', '.join(sorted(variables))})") from None
        except Exception as exc:  # noqa: BLE001 - any other rendering failure is the template's
            raise AgentConfigError(f"{origin}: {name}: template cannot be rendered: {exc}") from None


@lru_cache(maxsize=64)
def _compile(text: str):
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return environment.from_string(text)
