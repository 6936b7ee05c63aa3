"""Contract test for the in-process vLLM policy. vLLM needs a GPU and does not
install here, so a stand-in `vllm` module with the documented interface
(LLM(model=..., ...), LLM.get_tokenizer(), LLM.generate(prompts, sampling_params,
use_tqdm=...), SamplingParams(...), RequestOutput.prompt_token_ids,
CompletionOutput.{text, token_ids, logprobs, finish_reason}, Logprob.logprob)
is injected. Unknown keyword arguments raise, as they do in vLLM. This checks
swerve's side of the contract only; it is not a test on hardware."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

pytestmark = pytest.mark.rl


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list | None
    outputs: list[CompletionOutput]
    finished: bool = True


class SamplingParams:
    """Keyword-only, with the documented field names; anything else is a TypeError."""

    def __init__(
        self,
        *,
        n=1,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        repetition_penalty=1.0,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        seed=None,
        stop=None,
        stop_token_ids=None,
        ignore_eos=False,
        max_tokens=16,
        min_tokens=0,
        logprobs=None,
        prompt_logprobs=None,
        detokenize=True,
        skip_special_tokens=True,
        spaces_between_special_tokens=True,
        include_stop_str_in_output=False,
    ):
        self.__dict__.update({k: v for k, v in locals().items() if k != "self"})


@dataclass
class FakeLLM:
    tokenizer: object
    script: list[int]
    calls: list = field(default_factory=list)

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        assert isinstance(prompts, list) and set(prompts[0]) == {"prompt_token_ids"}
        self.calls.append((prompts, sampling_params, use_tqdm))
        ids = self.script[: sampling_params.max_tokens]
        logprobs = [{t: Logprob(-0.1 * (n + 1), 1, "x"), t + 1: Logprob(-9.0, 2, "y")} for n, t in enumerate(ids)]
        finish = "stop" if ids and ids[-1] in sampling_params.stop_token_ids else "length"
        output = CompletionOutput(0, "ignored", ids, None, logprobs, finish)
        return [RequestOutput("0", None, prompts[0]["prompt_token_ids"], None, [output])]


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path_factory):
    from transformers import AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    hf_tokenizer = AutoTokenizer.from_pretrained(make_tiny_qwen3(tmp_path_factory.mktemp("m") / "tiny"))
    script = hf_tokenizer.encode("ls -la", add_special_tokens=False) + [hf_tokenizer.convert_tokens_to_ids("<|im_end|>")]
    built: dict = {}

    def LLM(model, *, tokenizer=None, dtype="auto", seed=None, gpu_memory_utilization=0.9, max_model_len=None, tensor_parallel_size=1, trust_remote_code=False):
        built.update(model=model, dtype=dtype, seed=seed, max_model_len=max_model_len)
        return built.setdefault("llm", FakeLLM(hf_tokenizer, script=script))

    module = types.ModuleType("vllm")
    module.LLM = LLM
    module.SamplingParams = SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return built


def test_vllm_policy_follows_the_documented_interface(fake_vllm):
    from swerve.agents.policies import make_policy

    policy = make_policy("vllm:org/model?temperature=0.5&top_k=20&max_tokens=32&seed=4&max_model_len=4096&stop=END")
    assert fake_vllm["model"] == "org/model" and fake_vllm["seed"] == 4 and fake_vllm["max_model_len"] == 4096
    messages = [{"role": "user", "content": "list files"}]
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}}}]
    first = policy.act(messages, tools)
    second = policy.act(messages, tools)

    tokenizer = policy.tokenizer
    llm = fake_vllm["llm"]
    prompts, params, use_tqdm = llm.calls[0]
    assert use_tqdm is False
    assert prompts[0]["prompt_token_ids"] == tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, return_dict=False)
    assert (params.temperature, params.top_k, params.max_tokens, params.stop, params.logprobs) == (0.5, 20, 32, ["END"], 1)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in params.stop_token_ids
    assert (params.seed, llm.calls[1][1].seed) == (4, 5)

    assert first.text == "ls -la"
    assert first.completion_token_ids == llm.script
    assert first.logprobs == pytest.approx([-0.1 * (n + 1) for n in range(len(llm.script))])
    assert first.prompt_token_ids == prompts[0]["prompt_token_ids"]
    assert first.finish_reason == "stop"
    assert first.usage["completion_tokens"] == len(llm.script)
    assert second.completion_token_ids == first.completion_token_ids
    assert policy.describe()["engine"]["max_model_len"] == 4096


def test_vllm_missing_is_a_clear_error(monkeypatch):
    from swerve.agents.policies.vllm_policy import VLLMPolicy

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ValueError, match="vllm serve"):
        VLLMPolicy("org/model")
