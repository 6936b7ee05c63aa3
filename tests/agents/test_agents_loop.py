"""run_episode: actions, limits, format errors, truncation, history shape, manifest, infra errors."""

from __future__ import annotations

from pathlib import Path

import json

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.loop import EpisodeLimits, run_episode, truncate_observation
from swerve.agents.policies.noop import NoopPolicy
from swerve.environments.scratch import ScratchEnvironment
from swerve.errors import InfraError
from swerve.schema import Completion, ToolCall


class Scripted:
    """Returns the given completions in order, then repeats the last one."""

    name = "scripted"

    def __init__(self, *completions: Completion) -> None:
        self.completions = list(completions)
        self.seen: list[list[dict]] = []

    def act(self, messages, tools):
        self.seen.append(messages)
        index = min(len(self.seen) - 1, len(self.completions) - 1)
        return self.completions[index]

    def describe(self):
        return {"policy": "scripted", "seed": 7, "model": "test-model"}


def bash(command: str, **extra) -> Completion:
    return Completion(tool_calls=[ToolCall(name="bash", arguments={"command": command}, id="b")], **extra)


def hermes(name: str, **arguments) -> Completion:
    return Completion(text=f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>")


SUBMIT = Completion(tool_calls=[ToolCall(name="submit", id="s")])


@pytest.fixture()
def env(tmp_path):
    return scratch_env(calc_repo(tmp_path / "repo"))


def test_edit_then_submit_records_everything(env):
    policy = Scripted(
        Completion(text="fix it", tool_calls=[ToolCall(name="str_replace_editor", id="e", arguments={
            "command": "str_replace", "path": "calc.py", "old_str": "a - b", "new_str": "a + b"})],
            prompt_token_ids=[1, 2], completion_token_ids=[3, 4], logprobs=[-0.1, -0.2],
            usage={"prompt_tokens": 2, "completion_tokens": 2}),
        bash("cat calc.py"),
        SUBMIT,
    )
    trajectory = run_episode(calc_task(), env, policy)
    assert trajectory.exit_status == "submitted"
    assert "+    return a + b" in trajectory.final_patch
    first, second, last = trajectory.steps
    assert first.action.name == "str_replace_editor" and first.exit_code == 0
    assert "+    return a + b" in first.diff
    assert first.completion_token_ids == [3, 4] and first.logprobs == [-0.1, -0.2]
    assert "return a + b" in second.observation
    assert last.action.name == "submit"
    assert trajectory.stats["total_tokens"] == 4
    manifest = trajectory.manifest
    assert manifest["policy"]["model"] == "test-model" and manifest["seed"] == 7
    assert manifest["environment"]["backend"] == "scratch" and manifest["environment"]["base_commit"] == env.info.base_commit
    assert manifest["limits"]["max_steps"] == 50 and manifest["swerve_version"]
    roles = [m["role"] for m in trajectory.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert trajectory.messages[2]["tool_calls"][0]["id"] == "e"
    assert trajectory.messages[3]["tool_call_id"] == "e"
    assert "calc.py" in trajectory.messages[1]["content"] or "add(2, 3)" in trajectory.messages[1]["content"]


def test_hermes_text_calls_become_structured_history(env):
    trajectory = run_episode(calc_task(), env, Scripted(hermes("bash", command="echo hi"), hermes("submit")))
    assistant = trajectory.messages[2]
    assert assistant["content"] == "" and assistant["tool_calls"][0]["function"]["name"] == "bash"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"command": "echo hi"}
    assert trajectory.messages[3] == {"role": "tool", "tool_call_id": "call_0_0", "name": "bash", "content": "hi"}
    assert trajectory.steps[0].parse_source == "text"


def test_text_call_after_a_stray_tag_in_think_is_in_the_history_once(env):
    call = '<tool_call>{"name": "bash", "arguments": {"command": "echo hi"}}</tool_call>'
    policy = Scripted(Completion(text=f"<think>maybe <tool_call>?</think>{call}"), SUBMIT)
    trajectory = run_episode(calc_task(), env, policy)
    assistant = trajectory.messages[2]
    assert assistant["content"] == "<think>maybe <tool_call>?</think>"
    assert [entry["function"]["name"] for entry in assistant["tool_calls"]] == ["bash"]


def test_bash_block_fallback_uses_plain_messages(env):
    trajectory = run_episode(calc_task(), env, Scripted(Completion(text="```bash\necho hi\n```"), SUBMIT))
    assert trajectory.messages[2] == {"role": "assistant", "content": "```bash\necho hi\n```"}
    assert trajectory.messages[3] == {"role": "user", "content": "hi"}


def test_format_errors_end_the_episode_and_submit_the_diff(env):
    (Path(env.info.workdir) / "calc.py").write_text("changed\n")
    policy = Scripted(Completion(text="I am thinking about it."))
    trajectory = run_episode(calc_task(), env, policy, EpisodeLimits(max_format_errors=3))
    assert trajectory.exit_status == "format_error"
    assert len(trajectory.steps) == 3
    assert all(step.format_error and "No tool call found" in step.format_error for step in trajectory.steps)
    assert "+changed" in trajectory.final_patch
    assert len(trajectory.messages) == 2 + 2 * 3  # kept in the model's history by default
    assert "No tool call found" in policy.seen[1][-1]["content"]


def test_format_error_counter_resets_after_a_good_turn(env):
    junk = Completion(text="hmm")
    policy = Scripted(junk, junk, bash("true"), junk, junk, SUBMIT)
    trajectory = run_episode(calc_task(), env, policy, EpisodeLimits(max_format_errors=3))
    assert trajectory.exit_status == "submitted"
    assert trajectory.stats["format_errors"] == 4


def test_malformed_turns_can_be_dropped_from_history(env):
    policy = Scripted(Completion(text="junk"), SUBMIT)
    trajectory = run_episode(calc_task(), env, policy, EpisodeLimits(keep_malformed_turns=False))
    assert len(policy.seen[1]) == 2  # the model saw no trace of its malformed turn
    assert trajectory.steps[0].format_error  # but the trajectory keeps it
    assert trajectory.exit_status == "submitted"


def test_native_call_to_unknown_tool_gets_a_tool_reply(env):
    policy = Scripted(Completion(tool_calls=[ToolCall(name="python", id="p")]), SUBMIT)
    trajectory = run_episode(calc_task(), env, policy)
    assert trajectory.messages[3]["tool_call_id"] == "p"
    assert "Unknown tool 'python'" in trajectory.messages[3]["content"]


def test_multiple_calls_run_only_the_first_and_every_call_id_is_answered(env):
    two = Completion(tool_calls=[ToolCall(name="bash", arguments={"command": "echo one"}, id="a"),
                                 ToolCall(name="bash", arguments={"command": "echo two"}, id="b")])
    trajectory = run_episode(calc_task(), env, Scripted(two, SUBMIT))
    step = trajectory.steps[0]
    assert "one" in step.observation and "two" not in step.observation
    assert "Only the first of your 2 tool calls" in step.observation
    replies = [m for m in trajectory.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in replies[:2]] == ["a", "b"]
    assert "Not run" in replies[1]["content"]


def test_step_limit(env):
    trajectory = run_episode(calc_task(), env, Scripted(bash("echo a"), bash("echo b")), EpisodeLimits(max_steps=2))
    assert trajectory.exit_status == "step_limit" and len(trajectory.steps) == 2


def test_repeated_identical_action(env):
    trajectory = run_episode(calc_task(), env, Scripted(bash("ls")), EpisodeLimits(max_repeated_actions=3))
    assert trajectory.exit_status == "repeated_action" and len(trajectory.steps) == 3


def test_token_limit(env):
    turn = bash("echo x", usage={"total_tokens": 600})
    policy = Scripted(turn, bash("echo y", usage={"total_tokens": 600}))
    trajectory = run_episode(calc_task(), env, policy, EpisodeLimits(max_total_tokens=1000))
    assert trajectory.exit_status == "token_limit" and len(trajectory.steps) == 2


def test_time_limit(env):
    trajectory = run_episode(calc_task(), env, Scripted(bash("echo a"), bash("echo b")), EpisodeLimits(wall_clock_s=0))
    assert trajectory.exit_status == "time_limit" and trajectory.steps == []


def test_command_timeout_is_reported(env):
    trajectory = run_episode(calc_task(), env, Scripted(bash("sleep 5"), SUBMIT), EpisodeLimits(command_timeout_s=0.2))
    assert "timed out after 0.2s" in trajectory.steps[0].observation


def test_nonzero_exit_code_is_shown_and_recorded(env):
    trajectory = run_episode(calc_task(), env, Scripted(bash("sh -c 'exit 3'"), SUBMIT))
    assert trajectory.steps[0].exit_code == 3 and "[exit code 3]" in trajectory.steps[0].observation


def test_long_observations_are_truncated_head_and_tail(env):
    command = "python3 -c \"print('A' * 5000 + 'B' * 5000)\""
    trajectory = run_episode(calc_task(), env, Scripted(bash(command), SUBMIT), EpisodeLimits(observation_limit_bytes=1000))
    observation = trajectory.steps[0].observation
    assert len(observation.encode()) <= 1100
    assert observation.startswith("AAAA") and "BBBB" in observation
    assert "bytes cut from the middle" in observation


def test_truncate_observation_keeps_short_text_and_utf8():
    assert truncate_observation("short", 100) == "short"
    text = "é" * 2000
    cut = truncate_observation(text, 500)
    assert "bytes cut" in cut and cut.encode("utf-8")


def test_infra_error_propagates(env):
    class Broken(ScratchEnvironment):
        def exec(self, cmd, timeout=None):
            raise InfraError("container died")

    with pytest.raises(InfraError):
        run_episode(calc_task(), Broken(env.info.workdir, instance_id="broken"), Scripted(bash("ls")))


def test_noop_submits_an_empty_patch(env):
    trajectory = run_episode(calc_task(), env, NoopPolicy())
    assert trajectory.exit_status == "submitted" and trajectory.final_patch == ""
    assert len(trajectory.steps) == 1
