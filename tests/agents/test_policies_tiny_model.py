"""The tiny test model: loads offline with the Auto classes, has a tools-aware
Qwen3-style chat template, and is byte-for-byte the same for a seed."""

from __future__ import annotations

import hashlib

import pytest

pytestmark = pytest.mark.rl


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_tiny_model_loads_and_is_deterministic(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    first = make_tiny_qwen3(tmp_path / "a", seed=3)
    second = make_tiny_qwen3(tmp_path / "b", seed=3)
    other = make_tiny_qwen3(tmp_path / "c", seed=4)
    assert _digest(first) == _digest(second)
    assert _digest(first)["model.safetensors"] != _digest(other)["model.safetensors"]
    assert _digest(first)["tokenizer.json"] == _digest(other)["tokenizer.json"]

    model = AutoModelForCausalLM.from_pretrained(first)
    tokenizer = AutoTokenizer.from_pretrained(first)
    assert model.config.model_type == "qwen3"
    assert model.config.vocab_size == len(tokenizer)
    for token in ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"):
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token


def test_tiny_model_is_reused_from_its_folder(tmp_path):
    from swerve.agents.policies.tiny_model import MARKER_FILE, make_tiny_qwen3

    folder = make_tiny_qwen3(tmp_path / "m")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert make_tiny_qwen3(tmp_path / "m") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert (folder / MARKER_FILE).exists()
    assert not [p for p in tmp_path.iterdir() if ".building." in p.name]


def test_concurrent_builds_of_one_folder_wait_for_each_other(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from transformers import AutoModelForCausalLM

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    with ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: make_tiny_qwen3(tmp_path / "shared", seed=5), range(3)))
    assert folders == [tmp_path / "shared"] * 3
    assert AutoModelForCausalLM.from_pretrained(folders[0]).config.model_type == "qwen3"


def test_tiny_model_refuses_a_foreign_folder(tmp_path):
    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a swerve tiny model"):
        make_tiny_qwen3(tmp_path / "x")


def test_chat_template_renders_tools_and_tool_turns(tmp_path):
    from transformers import AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_qwen3(tmp_path / "t"))
    tools = [{"type": "function", "function": {"name": "submit", "description": "Submit.", "parameters": {"type": "object", "properties": {}}}}]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"name": "submit", "arguments": {}}}]},
        {"role": "tool", "content": "done"},
        {"role": "tool", "content": "again"},
    ]
    text = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n# Tools")
    assert '{"type": "function", "function": {"name": "submit"' in text
    assert '<|im_start|>assistant\nok\n<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call><|im_end|>' in text
    assert "<|im_start|>user\n<tool_response>\ndone\n</tool_response>\n<tool_response>\nagain\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    plain = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
    assert plain == "<|im_start|>user\ngo<|im_end|>\n<|im_start|>assistant\n"
