"""Policy specs: one string names a backend, a model and its options.

    openai:MODEL[@BASE_URL][?OPTION=VALUE&...]
    hf:PATH_OR_NAME[?OPTION=VALUE&...]        (hf:tiny = the tiny random test model)
    vllm:PATH_OR_NAME[?OPTION=VALUE&...]
    oracle | oracle-detours | oracle-stochastic:p=P,repro=R | noop | replay:TRAJECTORIES.jsonl

`@BASE_URL` is taken only when it starts with http:// or https://, so model
names holding `@` or `:` (e.g. `qwen3:8b`) stay whole. Options are URL query
pairs; a repeated option (`stop=a&stop=b`) makes a list. Values are converted to
each option's type, and an unknown option is an error that lists the valid ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

SPEC_FORMS = (
    "openai:MODEL[@http://HOST:PORT/v1][?temperature=0.2&max_tokens=1024&...]",
    "hf:PATH_OR_NAME[?device=cuda&temperature=0.7&...]  (hf:tiny = tiny random test model)",
    "vllm:PATH_OR_NAME[?temperature=0.7&max_tokens=1024&...]",
    "oracle",
    "oracle-detours",
    "oracle-stochastic:p=0.3,repro=0.7  (gold fix with probability p per seed, else a near miss; "
    "a reproduction test from the issue with probability repro)",
    "noop",
    "replay:TRAJECTORIES.jsonl",
)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"{value!r} is not a JSON object")
    return parsed


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


SAMPLING = {"temperature": float, "top_p": float, "seed": int, "stop": _str_list}

OPTIONS: dict[str, dict[str, Any]] = {
    "openai": {
        **SAMPLING,
        "max_tokens": int,
        "top_k": int,
        "logprobs": _bool,
        "token_ids": _bool,
        "native_tools": _bool,
        "tool_choice": str,
        "enable_thinking": _bool,
        "chat_template_kwargs": _json_object,
        "extra_body": _json_object,
        "api_key_env": str,
        "base_url": str,
        "timeout": float,
        "max_retries": int,
        "backoff_s": float,
    },
    "hf": {
        **SAMPLING,
        "top_k": int,
        "max_new_tokens": int,
        "max_tokens": int,
        "device": str,
        "dtype": str,
        "enable_thinking": _bool,
        "chat_template_kwargs": _json_object,
        "logprobs_mode": str,
        "trust_remote_code": _bool,
    },
    "vllm": {
        **SAMPLING,
        "top_k": int,
        "max_tokens": int,
        "dtype": str,
        "enable_thinking": _bool,
        "chat_template_kwargs": _json_object,
        "gpu_memory_utilization": float,
        "max_model_len": int,
        "tensor_parallel_size": int,
        "trust_remote_code": _bool,
    },
}


@dataclass
class PolicySpec:
    kind: str
    target: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def parse_policy_spec(spec: str) -> PolicySpec:
    """Split a spec into backend kind, target (model/path/file) and raw options."""
    text = (spec or "").strip()
    if not text:
        raise ValueError(f"empty policy spec; use one of: {', '.join(SPEC_FORMS)}")
    kind, _, rest = text.partition(":")
    if kind not in OPTIONS:
        return PolicySpec(kind=kind, target=rest)
    target, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in options:
            previous = options[key]
            options[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            options[key] = value
    if kind == "openai":
        for scheme in ("@http://", "@https://"):
            at = target.find(scheme)
            if at >= 0:
                target, options["base_url"] = target[:at], target[at + 1 :]
                break
    if not target:
        raise ValueError(f"policy spec {spec!r} names no model; write {kind}:MODEL (forms: {', '.join(SPEC_FORMS)})")
    return PolicySpec(kind=kind, target=target, options=options)


def typed_options(spec: str, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` converted to their types; None values dropped; unknown names refused."""
    known = OPTIONS[kind]
    typed: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in known:
            raise ValueError(
                f"policy spec {spec!r}: unknown option {key!r} for {kind}; valid options: {', '.join(sorted(known))}"
            )
        convert = known[key]
        if isinstance(value, list) and convert is not _str_list:
            value = value[-1]
        try:
            typed[key] = convert(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"policy spec {spec!r}: option {key}={value!r} is invalid ({exc})") from exc
    return typed
