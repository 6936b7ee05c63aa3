"""Policy specs: parsing, typed options, overrides and the errors users see."""

from __future__ import annotations

import pytest

from swerve.agents.policies import make_policy
from swerve.agents.policies.spec import parse_policy_spec, typed_options
from swerve.schema import Task


def test_openai_spec_with_base_url_and_options():
    spec = parse_policy_spec("openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1?temperature=0.2&stop=a&stop=b&logprobs=true")
    assert spec.kind == "openai" and spec.target == "Qwen/Qwen3-8B"
    assert spec.options["base_url"] == "http://127.0.0.1:8000/v1"
    typed = typed_options("s", "openai", spec.options)
    assert typed["temperature"] == 0.2 and typed["stop"] == ["a", "b"] and typed["logprobs"] is True


def test_model_names_with_colons_and_at_signs_stay_whole():
    assert parse_policy_spec("openai:qwen3:8b").target == "qwen3:8b"
    assert parse_policy_spec("openai:claude@2024").target == "claude@2024"


def test_make_openai_policy_with_overrides():
    policy = make_policy("openai:m@http://127.0.0.1:1/v1?temperature=0.7&top_k=20&enable_thinking=false", temperature=0.1, seed=None)
    assert policy.name == "openai"
    described = policy.describe()
    assert described["temperature"] == 0.1 and described["seed"] is None
    assert described["base_url"] == "http://127.0.0.1:1/v1"
    assert described["extra_body"] == {"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}}


def test_api_key_env(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ValueError, match=r"\$MY_KEY is not set"):
        make_policy("openai:m?api_key_env=MY_KEY")
    monkeypatch.setenv("MY_KEY", "sekrit")
    policy = make_policy("openai:m?api_key_env=MY_KEY&base_url=http://127.0.0.1:1/v1")
    assert policy.client.api_key == "sekrit"
    assert "sekrit" not in str(policy.describe())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt4", "unknown policy spec 'gpt4'; valid forms: openai:MODEL"),
        ("", "empty policy spec"),
        ("openai:", "names no model"),
        ("openai:m?temprature=1", "unknown option 'temprature' for openai; valid options: .*temperature"),
        ("openai:m?temperature=hot", "option temperature='hot' is invalid"),
        ("hf:x?logprobs=yes&device=cuda&trust_remote_code=maybe", "unknown option 'logprobs' for hf"),
        ("oracle", "built per task; pass task="),
    ],
)
def test_bad_specs_say_what_to_write(spec, message):
    with pytest.raises(ValueError, match=message):
        make_policy(spec)


def test_scripted_specs_are_delegated():
    gold = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    task = Task(instance_id="t-1", repo="o/r", patch=gold)
    assert make_policy("noop").name == make_policy("noop", task=task).name
    oracle = make_policy("oracle-detours", task=task, seed=3)
    assert type(oracle).__name__ == "OraclePolicy"


@pytest.mark.rl
def test_hf_tiny_builds_the_tiny_model_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWERVE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    policy = make_policy("hf:tiny?max_tokens=3&seed=1&enable_thinking=false")
    assert policy.max_new_tokens == 3 and policy.chat_template_kwargs == {"enable_thinking": False}
    assert str(tmp_path / "models") in policy.model_path
    completion = policy.act([{"role": "user", "content": "hi"}], [])
    assert len(completion.completion_token_ids) <= 3
    assert policy.tokenizer.decode(completion.prompt_token_ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
