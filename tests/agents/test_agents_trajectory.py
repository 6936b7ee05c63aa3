"""Trajectory JSONL (torn lines, last-wins, resume) and SFT export (rows, parquet, masks)."""

from __future__ import annotations

import json

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env
from token_masks import masked_runs

from swerve.agents.loop import run_episode
from swerve.agents.policies.oracle import OraclePolicy
from swerve.agents.trajectory import (
    append_trajectory,
    assistant_token_mask,
    export_sft_parquet,
    finished_instance_ids,
    read_trajectories,
    to_chat_row,
)
from swerve.schema import Grade, Trajectory


@pytest.fixture(scope="module")
def oracle_trajectory(tmp_path_factory):
    task = calc_task()
    env = scratch_env(calc_repo(tmp_path_factory.mktemp("repo") / "repo"))
    return run_episode(task, env, OraclePolicy(task))


def test_append_and_read_round_trip(tmp_path, oracle_trajectory):
    path = tmp_path / "t.jsonl"
    append_trajectory(path, oracle_trajectory)
    [back] = read_trajectories(path)
    assert back.model_dump(mode="json") == oracle_trajectory.model_dump(mode="json")
    assert back.steps[0].parse_source == "native"


def test_torn_last_line_is_skipped_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "t.jsonl"
    append_trajectory(path, Trajectory(instance_id="a__a-1", exit_status="submitted"))
    with open(path, "a") as handle:
        handle.write('{"instance_id": "b__b-1", "steps": [')  # killed mid-write
    assert finished_instance_ids(path) == {"a__a-1"}
    append_trajectory(path, Trajectory(instance_id="c__c-1"))
    assert [t.instance_id for t in read_trajectories(path)] == ["a__a-1", "c__c-1"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_last_line_per_instance_wins(tmp_path):
    path = tmp_path / "t.jsonl"
    append_trajectory(path, Trajectory(instance_id="a__a-1", exit_status="step_limit"))
    append_trajectory(path, Trajectory(instance_id="a__a-1", exit_status="submitted"))
    [only] = read_trajectories(path)
    assert only.exit_status == "submitted"


def test_bad_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"instance_id": "a__a-1"}\nnot json\n{"instance_id": "b__b-1"}\n')
    with pytest.raises(ValueError, match="t.jsonl:2"):
        read_trajectories(path)
    path.write_text('{"steps": 3}\n')
    with pytest.raises(ValueError, match="not a swerve trajectory"):
        read_trajectories(path)


def test_chat_row_has_uniform_messages_and_tools_json(oracle_trajectory):
    row = to_chat_row(oracle_trajectory)
    assert json.loads(row["tools"])[0]["function"]["name"] == "bash"
    keys = {tuple(sorted(m)) for m in row["messages"]}
    assert len(keys) == 1
    assistant = [m for m in row["messages"] if m["role"] == "assistant"]
    assert assistant and all(m["tool_calls"] for m in assistant)
    assert all(isinstance(c["function"]["arguments"], str) for m in assistant for c in m["tool_calls"])


def test_parquet_export_loads_back_as_a_dataset(tmp_path, oracle_trajectory):
    from datasets import load_dataset

    graded = oracle_trajectory.model_copy(update={"grade": Grade(instance_id="fake__calc-1", resolved=True)})
    path = tmp_path / "train.parquet"
    assert export_sft_parquet([graded, graded], path) == 2
    dataset = load_dataset("parquet", data_files=str(path), split="train")
    assert dataset.column_names[:3] == ["instance_id", "messages", "tools"]
    assert dataset[0]["resolved"] is True
    assert dataset[0]["messages"][2]["role"] == "assistant"


class CharTokenizer:
    """A tokenizer whose chat template is ChatML-like and whose tokens are characters."""

    def apply_chat_template(self, messages, tools=None, tokenize=True, add_generation_prompt=False):
        text = "".join(f"<{m['role']}>{m.get('content') or ''}{json.dumps(m.get('tool_calls') or '')}</>" for m in messages)
        if add_generation_prompt:
            text += "<assistant>"
        return [ord(c) for c in text]


def test_assistant_token_mask_covers_exactly_the_assistant_turns():
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A1"},
        {"role": "tool", "content": "T"},
        {"role": "assistant", "content": "A2"},
    ]
    out = assistant_token_mask(CharTokenizer(), messages, [])
    text = "".join(chr(i) for i in out["input_ids"])
    trained = "".join(chr(i) for i, m in zip(out["input_ids"], out["assistant_masks"]) if m)
    assert trained == 'A1""</>A2""</>'
    assert len(out["assistant_masks"]) == len(text)


@pytest.mark.rl
def test_assistant_mask_with_a_real_chat_template(oracle_trajectory):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.agents.trajectory import to_sft_dataset

    tokenizer = AutoTokenizer.from_pretrained(make_tiny_qwen3())
    [row] = to_sft_dataset([oracle_trajectory], tokenizer=tokenizer).to_list()
    texts = [tokenizer.decode(span) for span in masked_runs(row["input_ids"], row["assistant_masks"])]
    assert len(texts) == len(oracle_trajectory.steps)
    for text, step in zip(texts, oracle_trajectory.steps):
        assert text.startswith(step.assistant)
        assert "<tool_call>" in text and f'"name": "{step.action.name}"' in text
    assert "<tool_response>" not in "".join(texts) and "<|im_start|>user" not in "".join(texts)
