"""The SkyRL, rLLM and verl adapters against each library's documented interface.

SkyRL (skyrl-gym) installs here and is exercised for real. rLLM is not on the package
index this project reaches and verl pins an older transformers than this environment,
so their adapters are checked against the documented contract: rLLM's BaseEnv
(`from_dict`, `reset`, `step`, `close`, `is_multithread_safe`) and verl's agent loop
(`run(sampling_params, **fields)` awaiting `server_manager.generate(request_id=...,
prompt_ids=..., sampling_params=...)`, returning prompt_ids/response_ids/response_mask).
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from rl_fixtures import ScratchEnvironment

from swerve.schema import Task

TASK = Task(instance_id="scratch-adapter", repo="o/r", problem_statement="Fix the bug.")
BASH = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
SUBMIT = '<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>'


def test_skyrl_env_is_a_real_base_text_env_made_by_skyrl_gym():
    skyrl_gym = pytest.importorskip("skyrl_gym")
    from skyrl_gym.envs.base_text_env import BaseTextEnv

    if "swerve-contract" not in skyrl_gym.registry:
        skyrl_gym.register(id="swerve-contract", entry_point="swerve.rl.adapters.skyrl:SwerveTextEnv")
    env = skyrl_gym.make("swerve-contract", env_config={"grade": False, "max_steps": 5},
                         extras={"task": TASK.model_dump()}, environment=ScratchEnvironment(TASK))
    assert isinstance(env, BaseTextEnv) and env.max_turns == 5
    prompt, metadata = env.init([{"role": "user", "content": "placeholder"}])
    assert prompt[0]["role"] == "system" and "Fix the bug." in prompt[1]["content"]
    assert metadata["instance_id"] == "scratch-adapter"
    out = env.step(BASH)
    assert set(out) >= {"observations", "reward", "done", "metadata"}
    assert not out["done"] and "bug.py" in out["observations"][0]["content"]
    out = env.step(SUBMIT)
    assert out["done"] and out["metadata"]["exit_status"] == "submitted" and out["reward"] == 0.0
    env.close()


def test_rllm_env_follows_the_base_env_contract():
    from swerve.rl.adapters.rllm import SwerveEnv

    assert isinstance(inspect.getattr_static(SwerveEnv, "from_dict"), staticmethod)
    assert isinstance(inspect.getattr_static(SwerveEnv, "is_multithread_safe"), staticmethod)
    assert list(inspect.signature(SwerveEnv.step).parameters) == ["self", "action"]
    env = SwerveEnv.from_dict({"task": TASK.model_dump_json(), "grade": False,
                               "environment": ScratchEnvironment(TASK)})
    observation, info = env.reset()
    assert observation[1]["role"] == "user" and info["tools"]
    observation, reward, done, info = env.step(BASH)
    assert not done and reward == 0.0 and observation[0]["role"] == "tool"
    observation, reward, done, info = env.step(SUBMIT)
    assert done and info["exit_status"] == "submitted" and "trajectory" not in info
    env.close()


def test_rllm_row_without_a_task_is_a_clear_error():
    from swerve.rl.adapters.rllm import SwerveEnv

    with pytest.raises(ValueError, match="instance_id"):
        SwerveEnv.from_dict({"question": "what?"})


@pytest.mark.rl
def test_verl_agent_loop_returns_masked_token_output(tmp_path):
    from transformers import AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.rl.adapters.verl import SwerveAgentLoop

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_qwen3(tmp_path / "tiny"))
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    turns = [tokenizer.encode(text, add_special_tokens=False) + [end] for text in (BASH, SUBMIT)]

    class TokenOutput:
        def __init__(self, ids):
            self.token_ids = ids
            self.log_probs = [-0.25] * len(ids)

    class ServerManager:
        def __init__(self):
            self.prompts = []

        async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None):
            self.prompts.append(list(prompt_ids))
            return TokenOutput(turns[len(self.prompts) - 1])

    server = ServerManager()
    loop = SwerveAgentLoop(trainer_config=None, server_manager=server, tokenizer=tokenizer, processor=None)
    output = asyncio.run(loop.run({"temperature": 1.0}, task=TASK.model_dump(), grade=False,
                                  environment=ScratchEnvironment(TASK)))
    fields = output if isinstance(output, dict) else output.model_dump()
    ids, mask = fields["response_ids"], fields["response_mask"]
    assert fields["prompt_ids"] == server.prompts[0]
    assert [t for t, m in zip(ids, mask) if m] == turns[0] + turns[1]
    assert 0 in mask and len(fields["response_logprobs"]) == len(ids)
    assert server.prompts[1] == fields["prompt_ids"] + ids[: len(server.prompts[1]) - len(fields["prompt_ids"])]
    assert fields["extra_fields"]["exit_status"] == "submitted"
