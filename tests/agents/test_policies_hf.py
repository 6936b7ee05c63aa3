"""The in-process transformers policy on the tiny random Qwen3 model: exact token
ids, logprobs that match a forward pass, the chat template's own prompt."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.rl

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        },
    }
]
MESSAGES = [
    {"role": "system", "content": "You fix bugs."},
    {"role": "user", "content": "The tests fail; fix toolz."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "setup.py toolz tests"},
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    return make_tiny_qwen3(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def policy(tiny_model):
    from swerve.agents.policies.hf import HFPolicy

    return HFPolicy(str(tiny_model), max_new_tokens=16, seed=7)


def test_prompt_ids_are_the_chat_templates_tokenization(policy):
    completion = policy.act(MESSAGES, TOOLS)
    expected = policy.tokenizer.apply_chat_template(
        MESSAGES, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert completion.prompt_token_ids == list(expected)
    rendered = policy.tokenizer.decode(completion.prompt_token_ids)
    assert "<tool_call>" in rendered and '"name": "bash"' in rendered and "<tool_response>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_completion_ids_decode_exactly_to_the_text(policy):
    completion = policy.act(MESSAGES, TOOLS)
    ids = completion.completion_token_ids
    assert ids and len(ids) <= 16
    body = ids[:-1] if completion.finish_reason == "stop" else ids
    assert policy.tokenizer.decode(body, skip_special_tokens=False) == completion.text
    assert completion.usage["completion_tokens"] == len(ids)
    assert completion.usage["prompt_tokens"] == len(completion.prompt_token_ids)


def test_logprobs_match_a_forward_pass(policy):
    import torch

    completion = policy.act(MESSAGES, TOOLS)
    ids = completion.completion_token_ids
    assert len(completion.logprobs) == len(ids)
    assert all(math.isfinite(lp) and lp <= 0 for lp in completion.logprobs)
    full = torch.tensor([completion.prompt_token_ids + ids])
    with torch.no_grad():
        logits = policy.model(full).logits[0].float()
    start = len(completion.prompt_token_ids)
    expected = torch.log_softmax(logits[start - 1 : start - 1 + len(ids)], dim=-1)
    expected = expected.gather(1, torch.tensor(ids)[:, None])[:, 0].tolist()
    assert completion.logprobs == pytest.approx(expected, abs=1e-4)


def test_same_seed_same_turns(tiny_model, policy):
    from swerve.agents.policies.hf import HFPolicy

    twin = HFPolicy(str(tiny_model), max_new_tokens=16, seed=123)
    again = HFPolicy(str(tiny_model), max_new_tokens=16, seed=123)
    first = [twin.act(MESSAGES, TOOLS).completion_token_ids for _ in range(2)]
    second = [again.act(MESSAGES, TOOLS).completion_token_ids for _ in range(2)]
    assert first == second
    assert first[0] != first[1]


def test_greedy_picks_the_most_likely_token(tiny_model):
    from swerve.agents.policies.hf import HFPolicy

    greedy = HFPolicy(str(tiny_model), max_new_tokens=4, temperature=0)
    completion = greedy.act(MESSAGES[:2], [])
    full_logits = greedy.model(__import__("torch").tensor([completion.prompt_token_ids])).logits[0, -1]
    assert completion.completion_token_ids[0] == int(full_logits.argmax())
    assert greedy.describe()["temperature"] == 0.0


def test_bad_model_path_is_a_clear_error(tmp_path):
    from swerve.agents.policies.hf import HFPolicy

    with pytest.raises(ValueError, match="cannot load model"):
        HFPolicy(str(tmp_path / "missing"))


def test_policies_built_per_task_share_one_loaded_model(tiny_model, policy):
    from swerve.agents.policies import make_policy

    again = make_policy(f"hf:{tiny_model}?max_new_tokens=16&seed=7")
    assert again.model is policy.model and again.tokenizer is policy.tokenizer
    assert again.act(MESSAGES, TOOLS).completion_token_ids == type(policy)(str(tiny_model), max_new_tokens=16, seed=7).act(MESSAGES, TOOLS).completion_token_ids
