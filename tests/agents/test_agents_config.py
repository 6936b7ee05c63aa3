"""Agent configuration files: the shipped default reproduces the old prompt constants byte for byte,
files and --set overrides load, and every loading error is one line naming the file and the key."""

from __future__ import annotations

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.config import AgentConfigError, default_agent_config, load_agent_config
from swerve.agents.loop import EpisodeLimits, build_messages, run_episode
from swerve.schema import Completion, Task, ToolCall

# The prompts as they were constants in swerve/agents/loop.py (before agent configuration files),
# kept here verbatim as the reference the shipped default must reproduce.
OLD_FORMAT_HELP = (
    "Call exactly one tool per turn, either as a native tool call or as\n"
    '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>\n'
    "Available tools: bash, str_replace_editor, submit."
)
OLD_SYSTEM_PROMPT = """You are a careful software engineer working in a real code repository.
You solve the task by calling tools: run shell commands with `bash`, read and edit files with
`str_replace_editor`, and call `submit` when you are done. Work in small steps: look at the
relevant code, reproduce the problem, make a focused fix, run the tests, then submit.
Do not change the existing tests to make them pass.
{format_help}"""
OLD_USER_PROMPT = """<repository>
The repository {repo} is checked out at {workdir} (your shell starts there). Its git history is
available; your submitted patch is `git diff` of the working tree against the base commit.
</repository>

<issue>
{problem_statement}
</issue>

Resolve the issue by editing the source code (not the tests). When the fix is in place and
verified, call `submit`. You have at most {max_steps} turns."""


def old_messages(task: Task, workdir: str, limits: EpisodeLimits) -> list[dict]:
    system = OLD_SYSTEM_PROMPT.format(format_help=OLD_FORMAT_HELP)
    user = OLD_USER_PROMPT.format(
        repo=task.repo, workdir=workdir,
        problem_statement=task.problem_statement.strip() or "(no problem statement given)",
        max_steps=limits.max_steps,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


TASKS = [
    Task(instance_id="a__b-1", repo="a/b", problem_statement="Fix the {bug} in `x()`.\n\n  {{ not jinja }} {% raw %}\n"),
    Task(instance_id="c__d-2", repo="c/d", problem_statement=""),
    Task(instance_id="e__f-3", repo="e/f", problem_statement="  unicode: é ü 漢字 \t\n\nTraceback:\n  line 1\n"),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.instance_id)
@pytest.mark.parametrize("max_steps", [50, 7])
def test_default_config_reproduces_the_old_prompts_byte_for_byte(task, max_steps):
    limits = EpisodeLimits(max_steps=max_steps)
    expected = old_messages(task, "/testbed", limits)
    config = default_agent_config()
    assert config.render(task, "/testbed", limits) == expected
    assert build_messages(task, "/testbed", limits) == expected


def test_default_config_limits_are_the_episode_defaults():
    assert default_agent_config().limits == EpisodeLimits()
    assert default_agent_config().tools == ("bash", "str_replace_editor", "submit")


def write(tmp_path, text, name="agent.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_partial_file_overrides_only_its_keys(tmp_path):
    path = write(tmp_path, "instance_template: 'Fix {{ instance_id }} in {{ repo }} ({{ max_steps }} turns)'\n"
                           "limits:\n  max_steps: 9\n  wall_clock_s: null\n")
    config = load_agent_config(path)
    assert config.limits.max_steps == 9 and config.limits.wall_clock_s is None
    assert config.limits.command_timeout_s == EpisodeLimits().command_timeout_s
    messages = config.render(TASKS[0], "/testbed", config.limits)
    assert messages[1]["content"] == "Fix a__b-1 in a/b (9 turns)"
    assert messages[0] == old_messages(TASKS[0], "/testbed", EpisodeLimits())[0]


def test_set_overrides_win_over_the_file_and_are_typed(tmp_path):
    path = write(tmp_path, "limits:\n  max_steps: 9\n")
    config = load_agent_config(path, ["limits.max_steps=3", "limits.max_total_tokens=1000", "parser=tool_calls",
                                      "tools=[bash, submit]"])
    assert config.limits.max_steps == 3 and config.limits.max_total_tokens == 1000
    assert config.parser == "tool_calls" and config.tools == ("bash", "submit")
    assert [tool["function"]["name"] for tool in config.tool_schemas()] == ["bash", "submit"]
    assert "Available tools: bash, submit." in config.render(TASKS[0], "/w", config.limits)[0]["content"]


@pytest.mark.parametrize("text, overrides, fragments", [
    (None, [], ["does not exist"]),
    ("limits: [1, 2\n", [], ["not valid YAML"]),
    ("- a\n- b\n", [], ["a mapping"]),
    ("sytem_template: hi\n", [], ["unknown key 'sytem_template'", "system_template"]),
    ("limits:\n  max_stepz: 3\n", [], ["unknown key 'limits.max_stepz'", "max_steps"]),
    ("limits:\n  max_steps: ten\n", [], ["limits.max_steps", "integer"]),
    ("limits:\n  keep_malformed_turns: 3\n", [], ["limits.keep_malformed_turns", "true or false"]),
    ("limits:\n  max_steps: 0\n", [], ["limits.max_steps", "at least 1"]),
    ("system_template: 'Hi {{ repo '\n", [], ["system_template", "template"]),
    ("instance_template: 'Hi {{ no_such_variable }}'\n", [], ["instance_template", "no_such_variable"]),
    ("tools: [bash, grep]\n", [], ["tools", "'grep'", "str_replace_editor"]),
    ("parser: regex\n", [], ["parser", "'regex'", "auto"]),
    ("", ["limits.max_steps"], ["--set limits.max_steps", "KEY=VALUE"]),
    ("", ["limits.nope=3"], ["--set", "unknown key 'limits.nope'"]),
    ("", ["limits.max_steps=abc"], ["--set", "limits.max_steps", "integer"]),
])
def test_loading_errors_are_one_line_naming_the_file_and_key(tmp_path, text, overrides, fragments):
    path = tmp_path / "agent.yaml" if text is None else write(tmp_path, text)
    with pytest.raises(AgentConfigError) as caught:
        load_agent_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message
    if not overrides:
        assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_an_episode_uses_the_config_prompts_tools_and_limits(tmp_path):
    repo = calc_repo(tmp_path / "repo")
    path = write(tmp_path, "system_template: 'Be brief. Tools: {{ tools | join(\",\") }}'\n"
                           "tools: [bash, submit]\nparser: tool_calls\nlimits:\n  max_steps: 2\n")
    config = load_agent_config(path)

    class Policy:
        name = "seen"

        def __init__(self):
            self.turns = [Completion(tool_calls=[ToolCall(name="str_replace_editor",
                                                          arguments={"command": "view", "path": "."})]),
                          Completion(text="```bash\nls\n```")]
            self.tools = None

        def act(self, messages, tools):
            self.tools = [tool["function"]["name"] for tool in tools]
            self.messages = messages
            return self.turns.pop(0)

        def describe(self):
            return {"policy": "seen"}

    policy = Policy()
    trajectory = run_episode(calc_task(), scratch_env(repo), policy, config.limits, agent=config)
    assert policy.tools == ["bash", "submit"]
    assert trajectory.messages[0]["content"] == "Be brief. Tools: bash,submit"
    assert trajectory.exit_status == "step_limit" and len(trajectory.steps) == 2
    # str_replace_editor is not enabled, and the tool_calls parser has no fenced-bash fallback
    assert "Unknown tool 'str_replace_editor'" in trajectory.steps[0].format_error
    assert trajectory.steps[1].format_error and trajectory.steps[1].action is None
    assert trajectory.manifest["agent_config"]["source"] == str(path)
    assert trajectory.manifest["limits"]["max_steps"] == 2


def test_swerve_run_with_config_flags_and_set(tmp_path):
    """`swerve run --config FILE --max-repeats N --set KEY=VALUE` on a real local checkout: the
    trajectory shows the file's prompt, the flag and the override (override last)."""
    import json

    from typer.testing import CliRunner

    from swerve.cli import app
    from swerve.agents.trajectory import read_trajectories

    repo = calc_repo(tmp_path / "calc")
    task = calc_task(with_tests=False).model_copy(update={"repo_source": str(repo), "install_cmd": "true", "test_requirements": []})
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(task.model_dump(mode="json")) + "\n")
    config = write(tmp_path, "system_template: 'Only {{ tools | join(\" and \") }} for {{ instance_id }}.'\n"
                             "tools: [bash, submit]\nlimits:\n  max_steps: 9\n  max_repeated_actions: 7\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "run", "--tasks", str(tasks), "--policy", "noop", "--backend", "local", "--out", str(out),
        "--no-progress", "--config", str(config), "--max-repeats", "2", "--set", "limits.max_steps=3",
    ], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    (trajectory,) = read_trajectories(out / "trajectories.jsonl")
    assert trajectory.messages[0]["content"] == "Only bash and submit for fake__calc-1."
    assert "You have at most 3 turns." in trajectory.messages[1]["content"]
    assert [tool["function"]["name"] for tool in trajectory.tools] == ["bash", "submit"]
    limits = trajectory.manifest["limits"]
    assert (limits["max_steps"], limits["max_repeated_actions"], limits["command_timeout_s"]) == (3, 2, 120.0)
    assert trajectory.manifest["agent_config"]["overrides"] == ["limits.max_steps=3"]


@pytest.mark.parametrize("command", ["run", "teach"])
def test_cli_config_errors_are_one_line_exit_2(tmp_path, command):
    from typer.testing import CliRunner

    from swerve.cli import app

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(calc_task().model_dump_json() + "\n")
    bad = write(tmp_path, "limits:\n  max_stepz: 3\n")
    for extra in (["--config", str(bad)], ["--set", "limits.max_steps=many"], ["--config", str(tmp_path / "no.yaml")]):
        result = CliRunner().invoke(app, [command, "--tasks", str(tasks), "--policy", "noop", "--out",
                                          str(tmp_path / "o"), *extra], env={"COLUMNS": "250", "NO_COLOR": "1"})
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
        assert "limits.max_step" in lines[0] or "no.yaml" in lines[0]


def test_the_example_config_loads_and_renders():
    from pathlib import Path

    config = load_agent_config(Path(__file__).parents[2] / "examples" / "agent_config.yaml")
    assert config.tools == ("bash", "submit") and config.limits.max_steps == 30
    user = config.render(TASKS[0], "/testbed")[1]["content"]
    assert user.startswith("Repository: a/b at /testbed") and "you have 30 turns" in user


@pytest.mark.parametrize("command", ["run", "teach"])
def test_help_shows_config_and_set(command):
    from typer.testing import CliRunner

    from swerve.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0 and "--config" in result.output and "--set" in result.output
    assert "limits.max_steps=10" in result.output
