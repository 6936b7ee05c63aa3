"""SweEnv drives the agent loop's own turn logic one step at a time."""

from __future__ import annotations

import asyncio

from rl_fixtures import ScratchEnvironment, ScriptedPolicy

from swerve.agents.loop import EpisodeLimits
from swerve.agents.tools import tool_schemas
from swerve.rl.gym_env import AsyncSweEnv, SweEnv
from swerve.schema import Completion, Task, ToolCall

TASK = Task(instance_id="scratch-1", repo="o/r", problem_statement="Fix the bug.")


def _env(**kwargs) -> tuple[SweEnv, ScratchEnvironment]:
    scratch = ScratchEnvironment(TASK)
    return SweEnv(TASK, environment=scratch, grade=False, **kwargs), scratch


def test_reset_gives_loop_messages_and_tools():
    env, scratch = _env()
    messages, tools, info = env.reset()
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Fix the bug." in messages[1]["content"]
    assert tools == tool_schemas()
    assert info["instance_id"] == "scratch-1" and info["rollout_id"]
    assert scratch.resets == 1


def test_tool_call_text_runs_and_submit_ends_episode():
    env, scratch = _env()
    env.reset()
    turn = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}\n</tool_call>'
    observation, reward, done, truncated, info = env.step(turn)
    assert not done and not truncated and reward == 0.0
    assert observation[0]["role"] == "tool" and "bug.py" in observation[0]["content"]
    assert info["messages"][-2]["role"] == "assistant"
    observation, reward, done, truncated, info = env.step(
        Completion(tool_calls=[ToolCall(name="submit", arguments={})]))
    assert done and not truncated
    assert info["exit_status"] == "submitted"
    assert info["trajectory"].exit_status == "submitted"
    assert len(info["trajectory"].steps) == 2


def test_format_errors_end_the_episode_with_the_loop_limit():
    env, _ = _env(limits=EpisodeLimits(max_format_errors=2))
    env.reset()
    _, _, done, _, info = env.step("I think the answer is 42.")
    assert not done and info["format_error"]
    _, _, done, truncated, info = env.step("still no tool call")
    assert done and not truncated and info["exit_status"] == "format_error"


def test_step_limit_truncates():
    env, _ = _env(limits=EpisodeLimits(max_steps=2))
    env.reset()
    env.step("```bash\necho one\n```")
    _, _, done, truncated, info = env.step("```bash\necho two\n```")
    assert truncated and not done and info["exit_status"] == "step_limit"


def test_reset_reuses_the_environment_between_episodes():
    env, scratch = _env()
    for _ in range(3):
        env.reset()
        env.step(Completion(tool_calls=[ToolCall(name="submit", arguments={})]))
    assert scratch.resets == 3 and not scratch.closed
    env.close()
    assert not scratch.closed, "a lent environment stays open for its owner"


def test_step_after_end_is_refused():
    env, _ = _env()
    env.reset()
    env.step(Completion(tool_calls=[ToolCall(name="submit", arguments={})]))
    try:
        env.step("```bash\nls\n```")
    except RuntimeError as exc:
        assert "reset()" in str(exc)
    else:
        raise AssertionError("step after the end must fail")


def test_async_env_runs_an_episode():
    async def episode() -> str:
        async with AsyncSweEnv(TASK, environment=ScratchEnvironment(TASK), grade=False) as env:
            messages, tools, _ = await env.reset()
            policy = ScriptedPolicy(commands=1)
            while True:
                _, _, done, truncated, info = await env.step(policy.act(messages, tools))
                if done or truncated:
                    return info["exit_status"]
                messages = info["messages"]

    assert asyncio.run(episode()) == "submitted"
