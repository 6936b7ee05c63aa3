"""In-process transformers policy: the model's own chat template, sampling with
`generate`, and always the prompt ids, completion ids and per-token logprobs.

This is the backend RL and teacher-data users rely on when they need exact
tokens: the prompt ids are the chat template's tokenization of the conversation
(tools included), the completion ids are what was sampled, and the text is
those ids decoded, so re-rendering the turn reproduces them.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, Literal

from swerve.agents.policies.chat_tokens import completion_text, prompt_token_ids, stop_token_ids
from swerve.schema import Completion


def resolve_device(device: str) -> str:
    """`auto` means cuda when torch sees a GPU, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for but torch sees no GPU; use device=cpu or auto")
    return device


def resolve_dtype(dtype: str, device: str):
    """`auto` means bfloat16 on a GPU and float32 on the CPU."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype {dtype!r} is not a torch dtype; use auto, float32, bfloat16 or float16")
    return value


@lru_cache(maxsize=2)
def load_model(model: str, device: str, dtype_name: str, trust_remote_code: bool) -> tuple[Any, Any, threading.Lock]:
    """Tokenizer, model and a generation lock, loaded once per process.

    `swerve run` builds one policy per task; they share the weights, and the
    lock keeps concurrent workers from interleaving `generate` calls (and the
    global torch seed each call sets).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        loaded = AutoModelForCausalLM.from_pretrained(
            model, dtype=resolve_dtype(dtype_name, device), trust_remote_code=trust_remote_code
        ).to(device)
    except OSError as exc:
        raise ValueError(
            f"hf policy: cannot load model {model!r} ({exc}); pass a local folder holding "
            "config.json and weights, or a model name already in the Hugging Face cache"
        ) from exc
    loaded.eval()
    return tokenizer, loaded, threading.Lock()


class HFPolicy:
    """A transformers causal LM run in this process.

    Logprobs are those of the raw model (log-softmax of the unprocessed logits,
    before temperature/top-p), like vLLM's default `raw_logprobs`; set
    `logprobs_mode="processed"` for the sampling distribution instead.
    With `seed` set, call number k samples with torch seed `seed + k`, so a
    fresh policy replays the same sequence of turns.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        max_new_tokens: int = 512,
        seed: int | None = None,
        stop: list[str] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        logprobs_mode: Literal["raw", "processed"] = "raw",
        trust_remote_code: bool = False,
    ) -> None:
        if logprobs_mode not in ("raw", "processed"):
            raise ValueError(f"logprobs_mode {logprobs_mode!r}: use raw or processed")
        self.model_path = model
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = top_k
        self.max_new_tokens = int(max_new_tokens)
        self.seed = seed
        self.stop = list(stop or [])
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.logprobs_mode = logprobs_mode
        self._calls = 0
        dtype_name = str(self.dtype).replace("torch.", "")
        self.tokenizer, self.model, self._lock = load_model(model, self.device, dtype_name, trust_remote_code)
        self.stops = stop_token_ids(self.tokenizer, getattr(self.model.generation_config, "eos_token_id", None))

    def describe(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "model": self.model_path,
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "stop": self.stop,
            "chat_template_kwargs": self.chat_template_kwargs,
            "logprobs_mode": self.logprobs_mode,
        }

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        import torch

        prompt = prompt_token_ids(self.tokenizer, messages, tools, self.chat_template_kwargs)
        with self._lock:
            if self.seed is not None:
                torch.manual_seed(self.seed + self._calls)
            self._calls += 1
            return generate_completion(
                self.model, self.tokenizer, prompt, self.stops, max_new_tokens=self.max_new_tokens,
                temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, stop_strings=self.stop,
                logprobs_mode=self.logprobs_mode,
            )


def generate_completion(
    model: Any,
    tokenizer: Any,
    prompt: list[int],
    stops: list[int],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    stop_strings: list[str] | None = None,
    logprobs_mode: Literal["raw", "processed"] = "raw",
) -> Completion:
    """Sample one turn after the token ids `prompt` with `model.generate` (in eval
    mode, without gradients): the Completion carries the prompt ids, the sampled ids,
    their logprobs (raw model, or `processed` = the sampling distribution) and the
    text those ids decode to. Ends at a `stops` id or one of `stop_strings`."""
    import torch

    input_ids = torch.tensor([prompt], device=next(model.parameters()).device)
    sampling = temperature > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        "eos_token_id": stops,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0],
        "return_dict_in_generate": True,
        "output_logits": logprobs_mode == "raw",
        "output_scores": logprobs_mode == "processed",
    }
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k or 0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop_strings:
        kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
    finally:
        if was_training:
            model.train()
    generated = out.sequences[0, len(prompt):].tolist()
    steps = out.logits if logprobs_mode == "raw" else out.scores
    logprobs = [float(torch.log_softmax(step[0].float(), dim=-1)[token]) for step, token in zip(steps, generated)]
    text = completion_text(tokenizer, generated, stops)
    ended = bool(generated) and (generated[-1] in stops or any(text.endswith(s) for s in stop_strings or ()))
    return Completion(
        text=text,
        prompt_token_ids=list(prompt),
        completion_token_ids=generated,
        logprobs=logprobs,
        finish_reason="stop" if ended else "length",
        usage={"prompt_tokens": len(prompt), "completion_tokens": len(generated),
               "total_tokens": len(prompt) + len(generated)},
    )
