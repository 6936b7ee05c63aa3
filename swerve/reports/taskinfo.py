"""What reports need to know about a task: its gold patch, repository and difficulty.

Read leniently from task files (JSON, JSONL, parquet) or from what a run stored,
because a report should work on SWE-bench rows as published (where `difficulty`
is a string such as "15 min - 1 hour") as well as on swerve's own tasks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swerve.errors import TaskFormatError
from swerve.fileio import describe_bad_utf8

_DIFFICULTY_KEYS = ("label", "level", "difficulty", "bucket", "name")
_SWEBENCH_ID = re.compile(r"^(?P<owner>[^_]+(?:_[^_]+)*)__(?P<name>.+)-\d+$")


@dataclass(frozen=True)
class TaskInfo:
    instance_id: str
    repo: str = ""
    gold_patch: str = ""
    difficulty: str = "unknown"
    problem_statement: str = ""


def difficulty_label(value: Any) -> str:
    """One label for grouping: a string as is; from a dict its label/level/difficulty/
    bucket/name entry, the size of the gold fix for minted tasks (`lines_changed`),
    or its only entry as `key=value`; otherwise "unknown"."""
    if value is None or value == "" or value == {}:
        return "unknown"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict):
        for key in _DIFFICULTY_KEYS:
            if key in value and value[key] not in (None, ""):
                return str(value[key])
        lines = value.get("lines_changed")
        if isinstance(lines, int) and lines > 0:
            return "1 line" if lines == 1 else "2-3 lines" if lines <= 3 else "4+ lines"
        if len(value) == 1:
            key, item = next(iter(value.items()))
            return f"{key}={item}"
    return "unknown"


def repo_from_instance_id(instance_id: str) -> str:
    """SWE-bench ids are `owner__name-NUMBER`; recover `owner/name`, else ""."""
    match = _SWEBENCH_ID.match(instance_id)
    return f"{match['owner']}/{match['name']}" if match else ""


def task_info_from_row(row: dict[str, Any]) -> TaskInfo:
    instance_id = str(row.get("instance_id") or "")
    return TaskInfo(
        instance_id=instance_id,
        repo=str(row.get("repo") or "") or repo_from_instance_id(instance_id),
        gold_patch=str(row.get("patch") or ""),
        difficulty=difficulty_label(row.get("difficulty")),
        problem_statement=str(row.get("problem_statement") or ""),
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict(orient="records")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFormatError(describe_bad_utf8(path, raw, exc)) from None
    if suffix == ".jsonl" or (suffix != ".json" and not text.lstrip().startswith(("[", "{"))):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskFormatError(f"{path}:{number}: not valid JSON ({exc.msg}); fix or remove the line") from exc
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise TaskFormatError(f"{path}: not valid JSON or JSONL ({exc.msg})") from exc
    if isinstance(data, dict):
        data = [dict(value, instance_id=key) if isinstance(value, dict) else value for key, value in data.items()]
    return data


def load_task_infos(path: str | Path) -> dict[str, TaskInfo]:
    """Task infos keyed by instance_id from a JSON list, JSON dict keyed by id, JSONL or parquet file."""
    path = Path(path)
    if not path.is_file():
        raise TaskFormatError(f"{path}: no such task file; pass --tasks with a JSON, JSONL or parquet file")
    infos: dict[str, TaskInfo] = {}
    for number, row in enumerate(_rows(path), start=1):
        if not isinstance(row, dict) or not row.get("instance_id"):
            raise TaskFormatError(f"{path}: row {number} has no instance_id; every task row needs one")
        info = task_info_from_row(row)
        infos[info.instance_id] = info
    return infos
