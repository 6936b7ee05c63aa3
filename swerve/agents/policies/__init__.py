"""Policies: what produces the next assistant turn. `make_policy(spec)` builds one
from a spec string (see swerve.agents.policies.spec for the grammar):

    make_policy("openai:gpt-4o-mini?temperature=0")
    make_policy("openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1?logprobs=true&token_ids=true")
    make_policy("hf:Qwen/Qwen3-0.6B?device=cuda&temperature=0.7&max_new_tokens=1024")
    make_policy("vllm:Qwen/Qwen3-8B?max_tokens=2048")
    make_policy("oracle", task=task)

Backends import their heavy libraries only when built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from swerve.agents.policies.base import Policy
from swerve.agents.policies.spec import SPEC_FORMS, parse_policy_spec, typed_options

__all__ = ["Policy", "SCRIPTED_KINDS", "SPEC_FORMS", "make_policy", "resolve_model_path"]

SCRIPTED_KINDS = ("oracle", "oracle-detours", "oracle-stochastic", "noop", "replay")
TINY_MODEL_NAME = "tiny"


def make_policy(spec: str, *, task: Any = None, **overrides: Any) -> Policy:
    """Build the policy `spec` names. `overrides` (e.g. temperature=0.2 from a CLI
    flag) win over options written in the spec; None values are ignored.
    Scripted policies (oracle, replay) are built for `task`."""
    parsed = parse_policy_spec(spec)
    if parsed.kind in SCRIPTED_KINDS:
        return _scripted(spec, parsed.kind, task, overrides)
    builders = {"openai": _openai, "hf": _hf, "vllm": _vllm}
    if parsed.kind not in builders:
        raise ValueError(f"unknown policy spec {spec!r}; valid forms: {'; '.join(SPEC_FORMS)}")
    options = typed_options(spec, parsed.kind, {**parsed.options, **overrides})
    return builders[parsed.kind](parsed.target, options)


def _scripted(spec: str, kind: str, task: Any, overrides: dict[str, Any]) -> Policy:
    from swerve.agents.policies.scripted import scripted_policy

    if task is None and kind != "noop":
        raise ValueError(f"policy {spec!r} is built per task; pass task= (swerve run does this for each task)")
    seed = overrides.get("seed")
    return scripted_policy(spec.strip(), task, seed=0 if seed is None else int(seed))


def _template_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(options.pop("chat_template_kwargs", {}) or {})
    if "enable_thinking" in options:
        kwargs["enable_thinking"] = options.pop("enable_thinking")
    return kwargs


def _openai(model: str, options: dict[str, Any]) -> Policy:
    from swerve.agents.policies.openai_compat import OpenAIPolicy

    extra_body = dict(options.pop("extra_body", {}) or {})
    template = _template_kwargs(options)
    if template:
        extra_body["chat_template_kwargs"] = {**extra_body.get("chat_template_kwargs", {}), **template}
    if "top_k" in options:
        extra_body["top_k"] = options.pop("top_k")
    key_env = options.pop("api_key_env", None)
    if key_env:
        if not os.environ.get(key_env):
            raise ValueError(f"openai policy: api_key_env={key_env} but ${key_env} is not set; export it")
        options["api_key"] = os.environ[key_env]
    return OpenAIPolicy(model, extra_body=extra_body or None, **options)


def resolve_model_path(target: str) -> str:
    """`tiny` (when no such folder exists) is the tiny random Qwen3 test model, built on
    first use; anything else (a folder, a Hugging Face name) is returned as it is."""
    if target == TINY_MODEL_NAME and not Path(target).exists():
        from swerve.agents.policies.tiny_model import make_tiny_qwen3

        return str(make_tiny_qwen3())
    return target


def _hf(model: str, options: dict[str, Any]) -> Policy:
    from swerve.agents.policies.hf import HFPolicy

    if "max_tokens" in options:
        options.setdefault("max_new_tokens", options.pop("max_tokens"))
    return HFPolicy(resolve_model_path(model), chat_template_kwargs=_template_kwargs(options), **options)


def _vllm(model: str, options: dict[str, Any]) -> Policy:
    from swerve.agents.policies.vllm_policy import VLLMPolicy

    return VLLMPolicy(resolve_model_path(model), chat_template_kwargs=_template_kwargs(options), **options)
