"""The OpenAI-compatible policy against scripted HTTP answers (the real `openai`
client over an httpx mock transport): what it sends, what it reads back, when
it retries."""

from __future__ import annotations

import json

import pytest

try:  # openai 3.x ships its HTTP client as httpx2; older releases use httpx
    import httpx2 as httpx
except ImportError:
    import httpx

from swerve.agents.policies.openai_compat import EndpointRejected, EndpointUnavailable, OpenAIPolicy
from swerve.errors import InfraError

TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}]


def _answer(message: dict, **extra) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": extra.pop("finish_reason", "stop")}
    choice.update(extra.pop("choice_extra", {}))
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [choice],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        **extra,
    }


def _policy(replies, seen=None, **options):
    """A policy whose HTTP answers come from `replies` (status, json) in order."""
    replies = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        status, payload = replies.pop(0)
        return httpx.Response(status, json=payload)

    import openai

    client = openai.OpenAI(
        api_key="k", base_url="http://server.test/v1", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    delays: list[float] = []
    policy = OpenAIPolicy("m", base_url="http://server.test/v1", client=client, sleep=delays.append, **options)
    return policy, delays


def test_sends_sampling_options_tools_and_vllm_extras():
    seen: list[dict] = []
    policy, _ = _policy([(200, _answer({"content": "hi"}))], seen, temperature=0.2, top_p=0.9, max_tokens=64, seed=3, stop=["END"], logprobs=True, token_ids=True, extra_body={"top_k": 20})
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "bash", "arguments": {"command": "ls"}}}]},
        {"role": "tool", "tool_call_id": "call_1_0", "content": "a"},
    ]
    policy.act(messages, TOOLS)
    body = seen[0]
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9 and body["max_tokens"] == 64 and body["seed"] == 3
    assert body["stop"] == ["END"] and body["logprobs"] is True
    assert body["return_token_ids"] is True and body["top_k"] == 20
    assert body["tools"] == TOOLS
    sent_call = body["messages"][1]["tool_calls"][0]
    assert sent_call["type"] == "function" and sent_call["id"]
    assert json.loads(sent_call["function"]["arguments"]) == {"command": "ls"}


def test_unset_options_are_not_sent():
    seen: list[dict] = []
    policy, _ = _policy([(200, _answer({"content": "hi"}))], seen, native_tools=False)
    policy.act([{"role": "user", "content": "go"}], TOOLS)
    assert set(seen[0]) == {"model", "messages"}


def test_reads_native_tool_calls_token_ids_and_logprobs():
    answer = _answer(
        {"content": None, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls -la"}'}}]},
        finish_reason="tool_calls",
        choice_extra={
            "token_ids": [11, 12, 13],
            "logprobs": {"content": [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []} for t, lp in (("a", -0.5), ("b", -1.0), ("c", -0.25))]},
        },
        prompt_token_ids=[1, 2, 3, 4, 5],
    )
    policy, _ = _policy([(200, answer)])
    completion = policy.act([{"role": "user", "content": "go"}], TOOLS)
    assert completion.text == ""
    assert [(c.name, c.arguments, c.id) for c in completion.tool_calls] == [("bash", {"command": "ls -la"}, "t1")]
    assert completion.prompt_token_ids == [1, 2, 3, 4, 5]
    assert completion.completion_token_ids == [11, 12, 13]
    assert completion.logprobs == [-0.5, -1.0, -0.25]
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_token_ids_from_vllm_token_id_strings():
    answer = _answer({"content": "ab"}, choice_extra={"logprobs": {"content": [{"token": "token_id:7", "logprob": -0.1, "top_logprobs": []}, {"token": "token_id:9", "logprob": -0.2, "top_logprobs": []}]}})
    policy, _ = _policy([(200, answer)])
    completion = policy.act([{"role": "user", "content": "go"}], [])
    assert completion.completion_token_ids == [7, 9]
    assert completion.prompt_token_ids is None


def test_bad_json_arguments_go_back_to_the_text_for_the_loop_to_report():
    answer = _answer({"content": "trying", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls'}}]})
    policy, _ = _policy([(200, answer)])
    completion = policy.act([{"role": "user", "content": "go"}], TOOLS)
    assert completion.tool_calls == []
    assert completion.text == 'trying\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls}\n</tool_call>'


def test_retries_transport_errors_with_growing_backoff():
    policy, delays = _policy([(503, {"error": "busy"}), (429, {"error": "slow down"}), (200, _answer({"content": "ok"}))], backoff_s=1.0)
    assert policy.act([{"role": "user", "content": "go"}], []).text == "ok"
    assert len(delays) == 2
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0


def test_gives_up_as_an_infra_error_after_the_retries():
    policy, delays = _policy([(500, {"error": "boom"})] * 3, max_retries=2)
    with pytest.raises(EndpointUnavailable, match="failed 3 times") as info:
        policy.act([{"role": "user", "content": "go"}], [])
    assert isinstance(info.value, InfraError)
    assert len(delays) == 2


def test_client_errors_are_not_retried():
    policy, delays = _policy([(400, {"error": {"message": "context too long"}})])
    with pytest.raises(EndpointRejected, match="HTTP 400"):
        policy.act([{"role": "user", "content": "go"}], [])
    assert delays == []


def test_connection_refused_is_an_infra_error():
    policy = OpenAIPolicy("m", base_url="http://127.0.0.1:9/v1", max_retries=1, sleep=lambda s: None, timeout=5)
    with pytest.raises(EndpointUnavailable, match="127.0.0.1:9"):
        policy.act([{"role": "user", "content": "go"}], [])


def test_missing_key_without_a_server_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIPolicy("gpt-x")
