"""Token-in-token-out: the episode's token sequence holds exactly the sampled ids,
with a loss mask that is 1 on them and 0 on everything else."""

from __future__ import annotations

import pytest
from rl_fixtures import ScratchEnvironment

from swerve.agents.loop import EpisodeLimits
from swerve.rl.gym_env import SweEnv
from swerve.schema import Completion, Task

pytestmark = pytest.mark.rl

TASK = Task(instance_id="scratch-tokens", repo="o/r", problem_statement="Fix the bug.")
TURNS = [
    '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
    '<tool_call>\n{"name": "bash", "arguments": {"command": "cat setup.py"}}\n</tool_call>',
    '<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>',
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    folder = make_tiny_qwen3(tmp_path_factory.mktemp("tiny"))
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), folder


def _encode_turn(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_tokenizer_mode_keeps_generated_ids_and_masks_observations(tiny):
    _, tokenizer, _ = tiny
    env = SweEnv(TASK, environment=ScratchEnvironment(TASK), grade=False, tokenizer=tokenizer)
    messages, tools, info = env.reset()
    prompt = info["prompt_token_ids"]
    assert prompt == tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True,
                                                   return_dict=False)
    generated = []
    for number, text in enumerate(TURNS):
        ids = _encode_turn(tokenizer, text)
        generated.append(ids)
        logprobs = [-0.5 - number] * len(ids)
        _, _, done, _, info = env.step(Completion(text=text, completion_token_ids=ids, logprobs=logprobs),
                                       policy_version=number)
        if not done:
            so_far = info["prompt_token_ids"]
            assert so_far[: len(prompt)] == prompt
            assert tokenizer.decode(so_far).endswith("<|im_start|>assistant\n")
    tokens = env.token_trajectory
    assert tokens.prompt_ids == prompt
    assert tokens.policy_token_ids() == generated
    assert len(tokens.loss_mask) == len(tokens.completion_ids) == len(tokens.logprobs)
    policy_positions = [i for i, m in enumerate(tokens.loss_mask) if m == 1]
    assert [tokens.completion_ids[i] for i in policy_positions] == [t for ids in generated for t in ids]
    assert sum(tokens.loss_mask) < len(tokens.loss_mask), "observation tokens are present and masked"
    assert all(tokens.logprobs[i] == 0.0 for i, m in enumerate(tokens.loss_mask) if m == 0)
    assert tokens.policy_versions == [0, 1, 2] and tokens.policy_version == 0
    assert not tokens.retokenized
    observation_text = tokenizer.decode(tokens.completion_ids[tokens.turn_spans[0][1]:tokens.turn_spans[1][0]])
    assert "<tool_response>" in observation_text and "bug.py" in observation_text
    assert info["trajectory"].tokens["rollout_id"] == env.rollout_id


def test_generation_from_env_ids_records_sampled_ids(tiny):
    from swerve.rl.generation import generate_turn

    model, tokenizer, _ = tiny
    env = SweEnv(TASK, environment=ScratchEnvironment(TASK), grade=False, tokenizer=tokenizer,
                 limits=EpisodeLimits(max_steps=2))
    _, _, info = env.reset()
    sampled = []
    done = truncated = False
    while not (done or truncated):
        completion = generate_turn(model, tokenizer, info["prompt_token_ids"], max_new_tokens=12)
        assert len(completion.logprobs) == len(completion.completion_token_ids)
        sampled.append(completion.completion_token_ids)
        _, _, done, truncated, info = env.step(completion)
    tokens = env.token_trajectory
    assert tokens.policy_token_ids() == sampled
    assert tokens.input_ids[: len(tokens.prompt_ids)] == tokens.prompt_ids


def test_hf_policy_prompts_extend_the_sequence(tiny):
    from swerve.agents.policies.hf import HFPolicy

    _, tokenizer, folder = tiny
    policy = HFPolicy(str(folder), max_new_tokens=8, seed=1)
    env = SweEnv(TASK, environment=ScratchEnvironment(TASK), grade=False, limits=EpisodeLimits(max_steps=3))
    messages, tools, _ = env.reset()
    sampled = []
    done = truncated = False
    while not (done or truncated):
        completion = policy.act(messages, tools)
        sampled.append(completion.completion_token_ids)
        _, _, done, truncated, info = env.step(completion)
        messages = info["messages"]
    tokens = env.token_trajectory
    assert tokens is not None
    assert tokens.policy_token_ids() == sampled
    assert sum(tokens.loss_mask) == sum(len(ids) for ids in sampled)
