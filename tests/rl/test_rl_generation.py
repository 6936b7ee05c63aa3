"""generate_turn samples exactly as the hf policy does: same ids, same logprobs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.rl

MESSAGES = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "The tests fail."}]


def test_generate_turn_matches_the_hf_policy(tmp_path):
    import torch

    from swerve.agents.policies.chat_tokens import prompt_token_ids
    from swerve.agents.policies.hf import HFPolicy
    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.rl.generation import generate_turn

    policy = HFPolicy(str(make_tiny_qwen3(tmp_path / "tiny")), max_new_tokens=10, seed=7)
    from_policy = policy.act(MESSAGES, [])
    torch.manual_seed(7)
    prompt = prompt_token_ids(policy.tokenizer, MESSAGES, [])
    from_trainer = generate_turn(policy.model, policy.tokenizer, prompt, max_new_tokens=10)
    assert from_trainer.prompt_token_ids == from_policy.prompt_token_ids
    assert from_trainer.completion_token_ids == from_policy.completion_token_ids
    assert from_trainer.logprobs == from_policy.logprobs
    assert (from_trainer.text, from_trainer.finish_reason) == (from_policy.text, from_policy.finish_reason)
