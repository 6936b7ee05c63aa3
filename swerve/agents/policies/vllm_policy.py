"""In-process vLLM policy: `LLM.generate` on the chat template's token ids, with
`SamplingParams(logprobs=1)` so every sampled token's logprob comes back.

Same outputs as the hf policy (prompt ids, completion ids, logprobs, text
decoded from the ids), at vLLM's speed. Needs the [vllm] extra and a GPU. It is
checked only against vLLM's documented interface (LLM, SamplingParams,
RequestOutput/CompletionOutput, Logprob) by a contract test with a stand-in
module; it has not been run on hardware by swerve's own tests.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from swerve.agents.policies.chat_tokens import completion_text, prompt_token_ids, stop_token_ids
from swerve.schema import Completion


_ENGINES: dict[str, tuple[Any, threading.Lock]] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(vllm: Any, engine_args: dict[str, Any]) -> tuple[Any, threading.Lock]:
    """One `vllm.LLM` per set of engine arguments per process (`swerve run` builds a
    policy per task; a second engine would not fit on the GPU), with a lock so
    concurrent workers take turns calling `generate`."""
    key = json.dumps([id(vllm.LLM), engine_args], sort_keys=True, default=str)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = (vllm.LLM(**engine_args), threading.Lock())
        return _ENGINES[key]


class VLLMPolicy:
    """A vLLM engine in this process. With `seed` set, call number k uses seed `seed + k`.
    Logprobs are vLLM's defaults (the raw model's, before sampling adjustments)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        max_tokens: int = 512,
        seed: int | None = None,
        stop: list[str] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        trust_remote_code: bool = False,
        llm: Any = None,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ValueError(
                "vllm policy needs vLLM (pip install 'swerve[vllm]', on a machine with a GPU); "
                "or serve the model with `vllm serve` and use openai:MODEL@http://127.0.0.1:8000/v1"
            ) from exc
        self._vllm = vllm
        self.model_path = model
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = top_k
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self.stop = list(stop or [])
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.engine_args: dict[str, Any] = {
            "model": model,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "trust_remote_code": trust_remote_code,
        }
        if max_model_len is not None:
            self.engine_args["max_model_len"] = max_model_len
        if seed is not None:
            self.engine_args["seed"] = seed
        if llm is not None:
            self.llm, self._lock = llm, threading.Lock()
        else:
            self.llm, self._lock = shared_engine(vllm, self.engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        self.stops = stop_token_ids(self.tokenizer)
        self._calls = 0

    def describe(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "model": self.model_path,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
            "chat_template_kwargs": self.chat_template_kwargs,
            "engine": {k: v for k, v in self.engine_args.items() if k != "model"},
        }

    def sampling_params(self) -> Any:
        kwargs: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "logprobs": 1,
            "stop_token_ids": self.stops,
            "skip_special_tokens": False,
        }
        if self.top_k:
            kwargs["top_k"] = self.top_k
        if self.stop:
            kwargs["stop"] = self.stop
        if self.seed is not None:
            kwargs["seed"] = self.seed + self._calls
        return self._vllm.SamplingParams(**kwargs)

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        prompt = prompt_token_ids(self.tokenizer, messages, tools, self.chat_template_kwargs)
        with self._lock:
            params = self.sampling_params()
            self._calls += 1
            request = self.llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0]
        output = request.outputs[0]
        ids = [int(t) for t in output.token_ids]
        logprobs = [float(entry[token].logprob) for entry, token in zip(output.logprobs or [], ids)]
        return Completion(
            text=completion_text(self.tokenizer, ids, self.stops),
            prompt_token_ids=[int(t) for t in (request.prompt_token_ids or prompt)],
            completion_token_ids=ids,
            logprobs=logprobs if len(logprobs) == len(ids) else None,
            finish_reason=output.finish_reason,
            usage={"prompt_tokens": len(prompt), "completion_tokens": len(ids), "total_tokens": len(prompt) + len(ids)},
        )
