"""One episode configuration: `swerve run --config FILE` and the RL drivers (SweEnv,
RolloutManager, the trainer adapters) open an episode with the same messages and tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from agents_fake_env import calc_repo, calc_task  # noqa: E402

from swerve.agents.config import AgentConfigError, load_agent_config, resolve_agent_config  # noqa: E402
from swerve.agents.trajectory import read_trajectories  # noqa: E402
from swerve.cli import app  # noqa: E402
from swerve.rl.gym_env import SweEnv  # noqa: E402

CONFIG = """\
system_template: |
  CUSTOM SYSTEM for {{ repo }}: tools {{ tools | join(', ') }}; at most {{ max_steps }} turns.
instance_template: |
  CUSTOM ISSUE in {{ workdir }}:
  {{ problem_statement }}
tools: [bash, submit]
parser: tool_calls
limits:
  max_steps: 7
  command_timeout_s: 33
"""


@pytest.fixture()
def setup(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text(CONFIG)
    task = calc_task(with_tests=False).model_copy(update={"repo_source": str(calc_repo(tmp_path / "calc"))})
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(task.model_dump(mode="json")) + "\n")
    return config, task, tasks


def _opening(messages: list[dict], workdir: str) -> list[dict]:
    """The system and user messages, the environment's own folder written as <workdir>."""
    return [{**m, "content": m["content"].replace(workdir, "<workdir>")} for m in messages[:2]]


def _run_episode_opening(tmp_path, config, tasks):
    result = CliRunner().invoke(app, ["run", "--tasks", str(tasks), "--policy", "noop", "--backend", "scratch",
                                      "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    (trajectory,) = read_trajectories(tmp_path / "run" / "trajectories.jsonl")
    return _opening(trajectory.messages, trajectory.manifest["environment"]["workdir"]), trajectory


def test_sweenv_opens_with_the_messages_and_tools_of_a_run_episode(tmp_path, setup):
    config, task, tasks = setup
    run_opening, trajectory = _run_episode_opening(tmp_path, config, tasks)
    assert run_opening[0]["content"].startswith("CUSTOM SYSTEM for fake/calc: tools bash, submit; at most 7 turns")
    assert trajectory.tools and [t["function"]["name"] for t in trajectory.tools] == ["bash", "submit"]

    with SweEnv(task, backend="scratch", agent=str(config), grade=False) as env:
        messages, tools, _ = env.reset()
        assert _opening(messages, env.environment.info.workdir) == run_opening
        assert tools == trajectory.tools
        assert env.limits.max_steps == 7 and env.limits.command_timeout_s == 33.0
        agent = load_agent_config(config)
    with SweEnv(task, backend="scratch", agent=agent, grade=False) as env:
        messages, tools, _ = env.reset()
        assert _opening(messages, env.environment.info.workdir) == run_opening and tools == trajectory.tools


def test_rollout_manager_and_adapters_share_the_configuration(tmp_path, setup):
    from rl_fixtures import ScriptedPolicy

    from swerve.rl.adapters.skyrl import SwerveTextEnv
    from swerve.rl.adapters.trl import SwerveRollouts
    from swerve.rl.rollouts import RolloutManager

    config, task, tasks = setup
    run_opening, trajectory = _run_episode_opening(tmp_path, config, tasks)

    with RolloutManager([task], lambda t: ScriptedPolicy(commands=0), workers=1, group_size=1, backend="scratch",
                        agent=config, grade=False) as manager:
        (rollout,) = manager.next_group()
    rolled = rollout.trajectory
    assert _opening(rolled.messages, rolled.manifest["environment"]["workdir"]) == run_opening
    assert rolled.tools == trajectory.tools and rolled.manifest["agent_config"] == trajectory.manifest["agent_config"]

    skyrl = SwerveTextEnv({"grade": False, "backend": "scratch", "agent_config": str(config)},
                          {"task": task.model_dump()})
    try:
        messages, info = skyrl.init([])
        assert _opening(messages, skyrl.env.environment.info.workdir) == run_opening
        assert info["tools"] == trajectory.tools and skyrl.max_turns == 7
    finally:
        skyrl.close()

    trl = SwerveRollouts([task], agent=config, backend="scratch", grade=False)
    try:
        assert _opening(trl.prompt_for(task), task.workdir) == run_opening
        assert trl.limits.max_steps == 7
    finally:
        trl.close()


def test_resolve_agent_config_sets_a_turn_budget_and_refuses_overrides_on_an_object(tmp_path, setup):
    config, _, _ = setup
    agent = resolve_agent_config(str(config), max_steps=3)
    assert agent.limits.max_steps == 3 and agent.limits.command_timeout_s == 33.0 and agent.parser == "tool_calls"
    assert resolve_agent_config(None).source == "default"
    with pytest.raises(AgentConfigError, match="overrides apply to a configuration file"):
        resolve_agent_config(agent, ["limits.max_steps=2"])
    with pytest.raises(AgentConfigError, match="max_steps must be at least 1"):
        resolve_agent_config(None, max_steps=0)


def test_run_keeps_the_files_limits_unless_a_flag_is_given(tmp_path, setup):
    config, _, tasks = setup
    result = CliRunner().invoke(app, ["run", "--tasks", str(tasks), "--policy", "noop", "--backend", "scratch",
                                      "--config", str(config), "--max-steps", "9", "--out", str(tmp_path / "flag"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    (trajectory,) = read_trajectories(tmp_path / "flag" / "trajectories.jsonl")
    limits = trajectory.manifest["limits"]
    assert limits["max_steps"] == 9 and limits["command_timeout_s"] == 33.0, "the flag wins, the file fills the rest"
    assert "at most 9 turns" in trajectory.messages[0]["content"]
