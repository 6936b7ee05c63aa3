"""Trajectory files: JSONL I/O that survives a killed run, and export to chat rows for SFT.

A trajectories file holds one `Trajectory` per line. Appends go through one
write of a whole line; a torn last line (the process was killed mid-write) is
cut off before the next append and skipped when reading, so finished work is
never lost and never corrupted. When an instance appears more than once (a
rerun, a regrade), the last line wins.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from swerve.fileio import append_jsonl, iter_jsonl, write_jsonl
from swerve.schema import Trajectory

_append_lock = threading.Lock()


def append_trajectory(path: str | os.PathLike, trajectory: Trajectory) -> None:
    """Append one trajectory as a line; safe across threads and after a torn last line."""
    path = Path(path)
    record = trajectory.model_dump(mode="json")
    with _append_lock:
        _cut_torn_tail(path)
        append_jsonl(path, record)


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that has no newline (a write cut short), so the next append stays valid."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        size = handle.seek(0, os.SEEK_END)
        chunk = 1 << 16
        position = size
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            data = handle.read(position - start)
            newline = data.rfind(b"\n")
            if newline >= 0:
                handle.truncate(start + newline + 1)
                return
            position = start
        handle.truncate(0)


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    """All trajectories in the file, the last line per instance winning; [] when absent."""
    path = Path(path)
    if not path.exists():
        return []
    latest: dict[str, Trajectory] = {}
    for number, record in iter_jsonl(path):
        try:
            trajectory = Trajectory.model_validate(record)
        except Exception as exc:
            raise ValueError(f"{path}:{number}: not a swerve trajectory ({exc.__class__.__name__}: {exc})") from exc
        latest.pop(trajectory.instance_id, None)
        latest[trajectory.instance_id] = trajectory
    return list(latest.values())


def finished_instance_ids(path: str | os.PathLike) -> set[str]:
    """Instances that already have a trajectory (a batch run skips them on resume)."""
    return {trajectory.instance_id for trajectory in read_trajectories(path)}


def rewrite_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> None:
    """Replace the file atomically (used to attach grades after evaluation)."""
    write_jsonl(path, (trajectory.model_dump(mode="json") for trajectory in trajectories))


def to_chat_row(trajectory: Trajectory) -> dict[str, Any]:
    """One SFT row: OpenAI-style `messages` and the `tools` schemas as a JSON string.

    TRL's SFTTrainer reads `tools` as a JSON string (a list of heterogeneous schemas
    does not fit one Arrow type). Tool-call arguments stay JSON strings, as in the
    OpenAI format; chat templates (Qwen3, Llama 3, ...) accept them either way.
    """
    messages = [_clean_message(message) for message in trajectory.messages]
    return {
        "instance_id": trajectory.instance_id,
        "messages": messages,
        "tools": json.dumps(trajectory.tools),
        "exit_status": trajectory.exit_status,
        "resolved": bool(trajectory.grade and trajectory.grade.resolved),
        "policy": str(trajectory.manifest.get("policy_name", "")),
    }


def _clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """Every message gets the same keys so the rows form one Arrow schema."""
    return {
        "role": message.get("role", ""),
        "content": message.get("content") or "",
        "tool_calls": [
            {
                "id": call.get("id", ""),
                "type": call.get("type", "function"),
                "function": {
                    "name": call.get("function", {}).get("name", ""),
                    "arguments": _arguments_text(call.get("function", {}).get("arguments", "")),
                },
            }
            for call in message.get("tool_calls") or []
        ]
        or None,
        "tool_call_id": message.get("tool_call_id"),
        "name": message.get("name"),
    }


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def assistant_token_mask(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Tokenise a conversation with the tokenizer's own chat template and mark assistant tokens.

    For templates without `{% generation %}` markers (most, Qwen3's included) the mask
    is found by rendering growing prefixes: the tokens an assistant turn adds after the
    generation prompt are the ones trained on. Returns TRL's pre-tokenised columns
    `input_ids` and `assistant_masks`.
    """
    full = _render(tokenizer, messages, tools, add_generation_prompt=False)
    mask = [0] * len(full)
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = _render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        through = _render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        start = _common_prefix(before, full)
        end = _common_prefix(through, full)
        for position in range(start, end):
            mask[position] = 1
    return {"input_ids": full, "assistant_masks": mask}


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], add_generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=True, add_generation_prompt=add_generation_prompt
    )
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def _common_prefix(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


def to_sft_dataset(trajectories: Iterable[Trajectory], tokenizer: Any = None):
    """A Hugging Face `datasets.Dataset` of chat rows ready for TRL's SFTTrainer.

    Without a tokenizer: `messages` + `tools` rows (train with `assistant_only_loss=True`
    on a template that has generation markers). With one: also `input_ids` and
    `assistant_masks`, so TRL uses the assistant-only mask as given.
    """
    from datasets import Dataset

    rows = []
    for trajectory in trajectories:
        row = to_chat_row(trajectory)
        if tokenizer is not None:
            messages = [_template_message(m) for m in row["messages"]]
            row.update(assistant_token_mask(tokenizer, messages, trajectory.tools))
        rows.append(row)
    if not rows:
        return Dataset.from_dict({"instance_id": [], "messages": [], "tools": []})
    return Dataset.from_list(rows)


def _template_message(message: dict[str, Any]) -> dict[str, Any]:
    """Drop empty keys and give templates tool-call arguments as mappings (Jinja `tojson`)."""
    out = {key: value for key, value in message.items() if value is not None}
    if out.get("tool_calls"):
        out["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": _arguments_mapping(call["function"]["arguments"])}}
            for call in out["tool_calls"]
        ]
    return out


def _arguments_mapping(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


def export_sft_parquet(trajectories: Iterable[Trajectory], path: str | os.PathLike, tokenizer: Any = None) -> int:
    """Write the SFT rows to a parquet file (atomically); returns the row count."""
    dataset = to_sft_dataset(trajectories, tokenizer=tokenizer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    dataset.to_parquet(str(tmp))
    os.replace(tmp, path)
    return len(dataset)
