"""The openai policy against a real OpenAI-compatible server: `transformers serve`
with the tiny random model, started on loopback by the test. The model talks
junk; the policy must still return well-formed completions turn after turn."""

from __future__ import annotations

import pytest

from policies_serve import transformers_server

pytestmark = [pytest.mark.rl, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    root = tmp_path_factory.mktemp("serve")
    model = make_tiny_qwen3(root / "tiny")
    with transformers_server(model, root / "server.log") as base_url:
        yield model, base_url


def test_openai_policy_against_transformers_serve(server):
    from swerve.agents.policies import make_policy
    from swerve.agents.tools import parse_turn, tool_schemas

    model, base_url = server
    policy = make_policy(f"openai:{model}@{base_url}?max_tokens=24&temperature=1.0&seed=5&max_retries=2&backoff_s=0.2")
    messages = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "Fix the failing test."}]
    tools = tool_schemas()
    for turn in range(5):
        completion = policy.act(messages, tools)
        assert isinstance(completion.text, str)
        assert completion.finish_reason in ("stop", "length", "tool_calls")
        assert 0 < completion.usage["completion_tokens"] <= 24
        assert completion.usage["prompt_tokens"] > 0
        parsed = parse_turn(completion)
        assert parsed.ok != bool(parsed.error), "a turn is exactly one of: an action, a format error"
        messages.append({"role": "assistant", "content": completion.text})
        messages.append({"role": "user", "content": f"Format error on turn {turn}: {parsed.error}"})
    assert completion.usage["prompt_tokens"] > 50


def test_tool_turns_in_history_are_accepted(server):
    from swerve.agents.policies.openai_compat import OpenAIPolicy
    from swerve.agents.tools import tool_schemas

    model, base_url = server
    policy = OpenAIPolicy(str(model), base_url=base_url, max_tokens=4, max_retries=2, backoff_s=0.2)
    messages = [
        {"role": "user", "content": "List the files."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "bash", "arguments": {"command": "ls"}}}]},
        {"role": "tool", "tool_call_id": "c0", "name": "bash", "content": "setup.py\ntoolz"},
    ]
    completion = policy.act(messages, tool_schemas())
    assert completion.usage["completion_tokens"] <= 4
    short = policy.act(messages[:1], tool_schemas())
    assert completion.usage["prompt_tokens"] > short.usage["prompt_tokens"]
