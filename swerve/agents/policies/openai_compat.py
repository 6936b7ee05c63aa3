"""A policy backed by any OpenAI-compatible chat endpoint (`vllm serve`,
`transformers serve`, SGLang, hosted APIs) through the `openai` client.

Tools go to the server natively; tool calls come back parsed into
`schema.ToolCall`. A call whose arguments are not valid JSON is not dropped: it
is written back into the text as a Hermes `<tool_call>` block so the loop's
parser reports the error to the model. Token ids and logprobs are recorded when
the server returns them (vLLM does with `logprobs=True` and
`return_token_ids=True`). Transport failures (connection errors, timeouts, 429,
5xx) are retried with exponential backoff; other 4xx answers are not, since
repeating a rejected request cannot help.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

from swerve.errors import InfraError, SwerveError
from swerve.schema import Completion, ToolCall

RETRYABLE_STATUS = {408, 409, 429}


class EndpointUnavailable(InfraError):
    """The endpoint could not be reached or kept failing after every retry (never the model's result)."""


class EndpointRejected(SwerveError):
    """The endpoint refused the request (a 4xx other than 408/409/429): a bad model name, key, or request."""


class OpenAIPolicy:
    """Chat completions against an OpenAI-compatible server.

    `api_key` defaults to $OPENAI_API_KEY, or "EMPTY" when `base_url` points at a
    local server that needs none. `base_url` defaults to $OPENAI_BASE_URL, then
    the client's own default. `logprobs` and `token_ids` ask for per-token data
    (token ids are a vLLM extra; leave them off for servers that reject unknown
    fields). `extra_body` is sent as is (e.g. {"top_k": 20} or
    {"chat_template_kwargs": {"enable_thinking": false}} for vLLM).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        logprobs: bool = False,
        token_ids: bool = False,
        native_tools: bool = True,
        tool_choice: str | None = None,
        extra_body: dict[str, Any] | None = None,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not model:
            raise ValueError("openai policy: give a model name, e.g. openai:gpt-4o-mini or openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.stop = list(stop) if stop else None
        self.logprobs = bool(logprobs)
        self.token_ids = bool(token_ids)
        self.native_tools = bool(native_tools)
        self.tool_choice = tool_choice
        self.extra_body = dict(extra_body or {})
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self._sleep = sleep
        self.client = client or self._make_client(api_key)

    def _make_client(self, api_key: str | None) -> Any:
        import openai

        key = api_key or os.environ.get("OPENAI_API_KEY") or ("EMPTY" if self.base_url else None)
        if key is None:
            raise ValueError(
                "openai policy: no API key; set OPENAI_API_KEY, or give a local server with "
                "openai:MODEL@http://127.0.0.1:8000/v1"
            )
        return openai.OpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=0)

    def describe(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": self.stop,
            "logprobs": self.logprobs,
            "token_ids": self.token_ids,
            "native_tools": self.native_tools,
            "tool_choice": self.tool_choice,
            "extra_body": self.extra_body,
        }

    def request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The keyword arguments for `chat.completions.create` (unset options are left out)."""
        body: dict[str, Any] = {"model": self.model, "messages": wire_messages(messages)}
        for key in ("temperature", "top_p", "max_tokens", "seed", "stop"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if tools and self.native_tools:
            body["tools"] = tools
            if self.tool_choice:
                body["tool_choice"] = self.tool_choice
        if self.logprobs:
            body["logprobs"] = True
        extra = dict(self.extra_body)
        if self.token_ids:
            extra["return_token_ids"] = True
        if extra:
            body["extra_body"] = extra
        return body

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Completion:
        response = self._create_with_retries(self.request(messages, tools))
        return completion_from_response(response)

    def _create_with_retries(self, body: dict[str, Any]) -> Any:
        import openai

        where = self.base_url or "the default OpenAI endpoint"
        for attempt in range(self.max_retries + 1):
            try:
                return self.client.chat.completions.create(**body)
            except (openai.APIConnectionError, openai.InternalServerError) as exc:
                error = exc
            except openai.APIStatusError as exc:
                if exc.status_code not in RETRYABLE_STATUS and exc.status_code < 500:
                    raise EndpointRejected(
                        f"{where} rejected the request for model {self.model!r} "
                        f"(HTTP {exc.status_code}: {_short(exc)}); check the model name, key and options"
                    ) from exc
                error = exc
            if attempt < self.max_retries:
                delay = min(self.backoff_max_s, self.backoff_s * 2**attempt)
                self._sleep(delay * random.uniform(0.5, 1.0))
        raise EndpointUnavailable(
            f"{where} failed {self.max_retries + 1} times for model {self.model!r} ({_short(error)}); "
            "check that the server is up and reachable"
        ) from error


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the OpenAI API wants them: tool-call arguments as JSON strings,
    every call with an id and type; everything else untouched."""
    out = []
    for index, message in enumerate(messages):
        calls = message.get("tool_calls")
        if not calls:
            out.append(message)
            continue
        fixed = []
        for number, call in enumerate(calls):
            function = dict(call.get("function") or {"name": call.get("name"), "arguments": call.get("arguments", {})})
            if not isinstance(function.get("arguments"), str):
                function["arguments"] = json.dumps(function.get("arguments") or {})
            fixed.append({"id": call.get("id") or f"call_{index}_{number}", "type": "function", "function": function})
        out.append({**message, "tool_calls": fixed})
    return out


def completion_from_response(response: Any) -> Completion:
    """A `Completion` from a chat.completions response object (openai client types)."""
    if not getattr(response, "choices", None):
        raise EndpointUnavailable(f"the endpoint answered without any choice ({str(response)[:200]}); check the server log")
    choice = response.choices[0]
    message = choice.message
    text = message.content or ""
    calls: list[ToolCall] = []
    unparsed: list[str] = []
    for call in message.tool_calls or []:
        function = call.function
        try:
            arguments = json.loads(function.arguments) if function.arguments else {}
        except json.JSONDecodeError:
            arguments = None
        if isinstance(arguments, dict):
            calls.append(ToolCall(name=function.name, arguments=arguments, id=call.id))
        else:
            unparsed.append(f'<tool_call>\n{{"name": {json.dumps(function.name)}, "arguments": {function.arguments}}}\n</tool_call>')
    if unparsed:
        text = "\n".join([text, *unparsed]) if text else "\n".join(unparsed)
        calls = []
    usage = getattr(response, "usage", None)
    return Completion(
        text=text,
        tool_calls=calls,
        prompt_token_ids=_int_list(_extra(response, "prompt_token_ids") or _extra(choice, "prompt_token_ids")),
        completion_token_ids=_int_list(_extra(choice, "token_ids")) or _ids_from_logprob_tokens(choice),
        logprobs=_chosen_logprobs(choice),
        finish_reason=choice.finish_reason,
        usage={
            key: int(getattr(usage, key))
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            if usage is not None and isinstance(getattr(usage, key, None), int)
        },
    )


def _extra(obj: Any, key: str) -> Any:
    value = getattr(obj, key, None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get(key)
    return value


def _int_list(value: Any) -> list[int] | None:
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        return None
    return list(value)


def _logprob_entries(choice: Any) -> list[Any] | None:
    logprobs = getattr(choice, "logprobs", None)
    return getattr(logprobs, "content", None) if logprobs is not None else None


def _chosen_logprobs(choice: Any) -> list[float] | None:
    entries = _logprob_entries(choice)
    if not entries:
        return None
    return [float(entry.logprob) for entry in entries]


def _ids_from_logprob_tokens(choice: Any) -> list[int] | None:
    """vLLM started with --return-tokens-as-token-ids names each token "token_id:N"."""
    entries = _logprob_entries(choice)
    if not entries or not all(str(e.token).startswith("token_id:") for e in entries):
        return None
    try:
        return [int(str(e.token).split(":", 1)[1]) for e in entries]
    except ValueError:
        return None
