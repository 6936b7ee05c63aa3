"""Model-backed policies inside the real loop.

- In Docker, on a real example task: `transformers serve` with the tiny random
  model drives `run_episode` through the openai policy. The model writes junk;
  the loop must record format errors, stop within its limits, submit the diff,
  and the trajectory must be valid JSON that `replay` reproduces.
- Without Docker: the hf policy in the loop records token ids that decode to
  exactly the assistant text of every step, and the token limit is respected.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from policies_serve import transformers_server

pytestmark = pytest.mark.rl

FIXTURE_TASKS = Path(__file__).resolve().parents[1] / "fixtures" / "toolz_tasks.jsonl"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    return make_tiny_qwen3(tmp_path_factory.mktemp("loopmodel") / "tiny")


def _first_task():
    from swerve.harness.tasks import load_tasks

    return load_tasks(FIXTURE_TASKS)[0]


def _leftovers(docker_client, run_id):
    return docker_client.containers.list(all=True, filters={"label": f"swerve.run={run_id}"})


@pytest.mark.docker
@pytest.mark.slow
def test_served_junk_model_drives_the_loop_and_replays(docker_client, tiny_model, tmp_path):
    from swerve.agents.loop import EpisodeLimits, run_episode
    from swerve.agents.policies import make_policy
    from swerve.agents.policies.replay import ReplayPolicy
    from swerve.environments import open_environment
    from swerve.schema import Trajectory

    task = _first_task()
    run_id = f"policytest-{uuid.uuid4().hex[:8]}"
    limits = EpisodeLimits(max_steps=5, max_format_errors=3, wall_clock_s=900, command_timeout_s=60)
    with transformers_server(tiny_model, tmp_path / "server.log") as base_url:
        policy = make_policy(f"openai:{tiny_model}@{base_url}?max_tokens=32&seed=11&max_retries=3&backoff_s=0.2")
        with open_environment(task, "docker", run_id=run_id) as env:
            trajectory = run_episode(task, env, policy, limits)
            assert trajectory.final_patch == env.diff()

    assert trajectory.exit_status in ("format_error", "step_limit", "repeated_action", "submitted")
    assert 1 <= len(trajectory.steps) <= limits.max_steps
    malformed = [step for step in trajectory.steps if step.format_error]
    assert malformed, "a random model should produce at least one malformed turn"
    assert all(step.observation.startswith("Format error") for step in malformed)
    if trajectory.exit_status == "format_error":
        assert all(step.format_error for step in trajectory.steps[-limits.max_format_errors :])
    assert trajectory.manifest["policy"]["model"] == str(tiny_model)
    assert all(step.usage.get("completion_tokens", 0) <= 32 for step in trajectory.steps)

    restored = Trajectory.model_validate_json(trajectory.model_dump_json())
    assert restored.steps[0].assistant == trajectory.steps[0].assistant

    with open_environment(task, "docker", run_id=run_id) as env:
        replayed = run_episode(task, env, ReplayPolicy(restored), limits)
    assert [s.assistant for s in replayed.steps] == [s.assistant for s in trajectory.steps]
    assert [s.format_error is None for s in replayed.steps] == [s.format_error is None for s in trajectory.steps]
    assert replayed.exit_status == trajectory.exit_status
    assert replayed.final_patch == trajectory.final_patch
    assert _leftovers(docker_client, run_id) == []


def test_hf_policy_token_ids_in_the_trajectory_decode_to_each_step(tiny_model, tmp_path):
    from agents_fake_env import make_repo, scratch_env

    from swerve.agents.loop import EpisodeLimits, run_episode
    from swerve.agents.policies import make_policy
    from swerve.schema import Task

    repo = make_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return a - b\n"})
    task = Task(instance_id="calc-1", repo="local/calc", problem_statement="add() subtracts.")
    policy = make_policy(f"hf:{tiny_model}?max_new_tokens=24&seed=2")
    trajectory = run_episode(task, scratch_env(repo), policy, EpisodeLimits(max_steps=4, max_format_errors=3))

    assert trajectory.steps
    for step in trajectory.steps:
        ids = step.completion_token_ids
        assert ids and len(step.logprobs) == len(ids)
        body = ids[:-1] if step.finish_reason == "stop" else ids
        assert policy.tokenizer.decode(body, skip_special_tokens=False) == step.assistant
    first_prompt = policy.tokenizer.decode(trajectory.steps[0].prompt_token_ids)
    assert "add() subtracts." in first_prompt and '"name": "str_replace_editor"' in first_prompt
    if len(trajectory.steps) > 1:
        assert len(trajectory.steps[1].prompt_token_ids) > len(trajectory.steps[0].prompt_token_ids)


def test_hf_policy_in_the_loop_respects_the_token_limit(tiny_model, tmp_path):
    from agents_fake_env import make_repo, scratch_env

    from swerve.agents.loop import EpisodeLimits, run_episode
    from swerve.agents.policies import make_policy
    from swerve.schema import Task

    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n"})
    task = Task(instance_id="a-1", repo="local/a", problem_statement="x should be 2.")
    policy = make_policy(f"hf:{tiny_model}?max_new_tokens=8&seed=3")
    limits = EpisodeLimits(max_steps=10, max_format_errors=10, max_total_tokens=1)
    trajectory = run_episode(task, scratch_env(repo), policy, limits)
    assert trajectory.exit_status == "token_limit"
    assert len(trajectory.steps) == 1
