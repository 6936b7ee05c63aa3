"""Training data from many graded attempts: DPO preference pairs and verifier rows.

- `preference_pairs(run_dir)`: for each task with at least one resolved and one
  unresolved attempt, rows in TRL's conversational preference format: `prompt` (the
  system and user messages every attempt of the task starts from), `chosen` (the rest
  of a resolved attempt: assistant turns with their tool calls and the tool results)
  and `rejected` (the rest of an unresolved one), plus `tools` as a JSON string, which
  TRL's DPOTrainer passes to the chat template. Messages have the SFT export's uniform
  keys (tool-call arguments as JSON strings), so rows form one Arrow schema.
- `verifier_rows(run_dir)`: one row per graded attempt: the whole conversation, the
  final patch and `resolved`, for training a verifier or critic.

Both read a multi-attempt run folder (`swerve run --attempts N --evaluate`) and are
written as parquet through `datasets`.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from swerve.agents.trajectory import _clean_message, read_trajectories
from swerve.schema import Trajectory


def graded_attempts(run_dir: str | os.PathLike) -> dict[str, list[tuple[int, Trajectory]]]:
    """Instance id -> [(attempt, trajectory)] for the graded attempts, by attempt number."""
    found: dict[str, list[tuple[int, Trajectory]]] = {}
    for manifest in sorted((Path(run_dir) / "attempts").glob("*/run.json")):
        attempt = json.loads(manifest.read_text()).get("attempt")
        if attempt is None:
            continue
        for trajectory in read_trajectories(manifest.parent / "trajectories.jsonl"):
            if trajectory.grade is not None:
                found.setdefault(trajectory.instance_id, []).append((int(attempt), trajectory))
    if not found:
        raise ValueError(f"{run_dir} has no graded attempts; run `swerve run --attempts N --evaluate` into it first")
    return {iid: sorted(rows, key=lambda row: row[0]) for iid, rows in sorted(found.items())}


def _split(trajectory: Trajectory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt, completion): the messages before the first assistant turn, and the rest."""
    messages = [_clean_message(message) for message in trajectory.messages]
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), len(messages))
    return messages[:first], messages[first:]


def preference_pairs(run_dir: str | os.PathLike, max_pairs_per_task: int = 4) -> list[dict[str, Any]]:
    """DPO rows (prompt / chosen / rejected / tools) pairing resolved with unresolved attempts
    of the same task and the same prompt; at most `max_pairs_per_task` per task."""
    rows = []
    for instance_id, attempts in graded_attempts(run_dir).items():
        good = [(a, t) for a, t in attempts if t.grade.resolved and t.final_patch.strip()]
        bad = [(a, t) for a, t in attempts if not t.grade.resolved]
        pairs = 0
        for (good_attempt, chosen), (bad_attempt, rejected) in _interleaved(good, bad):
            if pairs >= max_pairs_per_task:
                break
            prompt, chosen_turns = _split(chosen)
            rejected_prompt, rejected_turns = _split(rejected)
            if prompt != rejected_prompt or not chosen_turns or not rejected_turns:
                continue
            rows.append({
                "instance_id": instance_id,
                "prompt": prompt,
                "chosen": chosen_turns,
                "rejected": rejected_turns,
                "tools": json.dumps(chosen.tools),
                "chosen_attempt": good_attempt,
                "rejected_attempt": bad_attempt,
            })
            pairs += 1
    return rows


def _interleaved(good: list, bad: list):
    """Every (good, bad) combination, those of low attempt indices on both sides first."""
    combos = sorted(itertools.product(range(len(good)), range(len(bad))), key=lambda ij: (max(ij), ij))
    return [(good[i], bad[j]) for i, j in combos]


def verifier_rows(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per graded attempt: messages, tools, the final patch, resolved."""
    rows = []
    for instance_id, attempts in graded_attempts(run_dir).items():
        for attempt, trajectory in attempts:
            rows.append({
                "instance_id": instance_id,
                "attempt": attempt,
                "messages": [_clean_message(message) for message in trajectory.messages],
                "tools": json.dumps(trajectory.tools),
                "final_patch": trajectory.final_patch,
                "exit_status": trajectory.exit_status,
                "resolved": bool(trajectory.grade.resolved),
            })
    return rows


def write_parquet(rows: list[dict[str, Any]], path: str | os.PathLike) -> int:
    """Write rows as parquet through `datasets` (atomically); returns the row count."""
    from datasets import Dataset

    if not rows:
        raise ValueError(f"nothing to write to {path}: no task has the attempts it needs (for pairs: one resolved "
                         "and one unresolved); run more attempts")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Dataset.from_list(rows).to_parquet(str(tmp))
    os.replace(tmp, path)
    return len(rows)
