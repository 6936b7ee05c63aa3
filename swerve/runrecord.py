"""The run record: RUN_DIR/run.json, one versioned model for every writer and reader.

`swerve run`, `teach`, `eval` (and the attempts of `run --attempts`) write it through
`write_run_record`; `swerve report` reads it through `read_run_record`, which also
maps the two older shapes (the agent batch's and the evaluator's run.json, before
`record_version` existed) onto this model.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RECORD_VERSION = 1
RUN_RECORD = "run.json"

Kind = Literal["run", "eval", "teach", "train", "attempts"]
_OLD_KINDS = {"agent": "run"}


class RunRecordError(ValueError):
    """run.json cannot be read: the message names the file and what is wrong."""


class TasksSource(BaseModel):
    """Where the tasks came from: a file path (as given) or a dataset name, and a hash of their rows."""

    model_config = ConfigDict(extra="allow")

    source: str | None = Field(default=None, description="task file path as given on the command line, or a dataset name")
    source_abs: str | None = Field(default=None, description="the task file's absolute path when it was a file")
    sha256: str | None = Field(default=None, description="sha256 of the task rows (sorted by instance_id)")
    count: int | None = None


class RunRecord(BaseModel):
    """RUN_DIR/run.json."""

    model_config = ConfigDict(extra="allow")

    record_version: int = RECORD_VERSION
    run_id: str
    kind: Kind
    swerve_version: str = ""
    tasks: TasksSource = Field(default_factory=TasksSource)
    policy: str | None = Field(default=None, description="the policy spec, e.g. oracle or openai:MODEL")
    model_name: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict, description="backend, workers, limits, timeouts, seeds...")
    created_at: str | None = None
    resumed_at: str | None = None
    ended_at: str | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def tasks_hash(tasks: Iterable[Any]) -> str:
    """sha256 over the task rows (pydantic models or dicts), sorted by instance_id."""
    rows = [t.model_dump(mode="json") if hasattr(t, "model_dump") else dict(t) for t in tasks]
    rows.sort(key=lambda row: str(row.get("instance_id", "")))
    payload = json.dumps(rows, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def tasks_source(source: str | os.PathLike | None, tasks: Iterable[Any] | None = None) -> TasksSource:
    """The TasksSource for `source` (a path or dataset name) and the task rows that were loaded."""
    rows = list(tasks) if tasks is not None else None
    text = str(source) if source is not None else None
    absolute = str(Path(text).resolve()) if text and Path(text).is_file() else None
    return TasksSource(source=text, source_abs=absolute, sha256=tasks_hash(rows) if rows is not None else None,
                       count=len(rows) if rows is not None else None)


def _from_old(data: dict[str, Any]) -> dict[str, Any]:
    """Map a run.json written before record_version (batch.py's or evaluate.py's shape)."""
    data = dict(data)
    settings = dict(data.get("settings") or {}) if isinstance(data.get("settings"), dict) else {}
    kind = data.get("kind") or ("eval" if "eval" in settings else "run")
    data["kind"] = _OLD_KINDS.get(kind, kind)
    if "policy" not in data or not isinstance(data.get("policy"), (str, type(None))):
        value = settings.get("policy")
        data["policy"] = value if isinstance(value, str) else None
    if not data.get("model_name"):
        for key in ("model_name", "model", "model_name_or_path"):
            if isinstance(settings.get(key), str) and settings[key]:
                data["model_name"] = settings[key]
                break
    if not isinstance(data.get("tasks"), dict):
        for key in ("tasks", "tasks_file", "dataset"):
            value = data.get(key) if isinstance(data.get(key), str) else settings.get(key)
            if isinstance(value, str) and value:
                data["tasks"] = {"source": value}
                break
        else:
            data["tasks"] = {}
    data["settings"] = settings
    data["record_version"] = 0
    return data


def parse_run_record(data: Any, path: str | os.PathLike = RUN_RECORD) -> RunRecord:
    """A RunRecord from run.json's parsed JSON, any version; RunRecordError naming `path` if it is not one."""
    if not isinstance(data, dict):
        raise RunRecordError(f"{path}: expected a JSON object, found {type(data).__name__}")
    version = data.get("record_version")
    if version is None:
        data = _from_old(data)
    elif not isinstance(version, int) or version > RECORD_VERSION:
        raise RunRecordError(f"{path}: record_version {version!r} is newer than this swerve reads "
                             f"({RECORD_VERSION}); upgrade swerve")
    if not data.get("run_id"):
        data = {**data, "run_id": Path(path).parent.name or "run"}
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise RunRecordError(f"{path}: {where}: {first['msg']}; fix the field or delete run.json") from None


def read_run_record(run_dir: str | os.PathLike) -> RunRecord | None:
    """RUN_DIR/run.json as a RunRecord (older shapes mapped); None when there is no run.json."""
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunRecordError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)}); fix or delete it") from None
    return parse_run_record(data, path)


def write_run_record(run_dir: str | os.PathLike, record: RunRecord) -> Path:
    """Write RUN_DIR/run.json atomically."""
    from swerve.fileio import atomic_write_json

    path = Path(run_dir) / RUN_RECORD
    atomic_write_json(path, record.model_dump(mode="json"))
    return path


def finish_run_record(run_dir: str | os.PathLike) -> None:
    """Stamp ended_at on RUN_DIR/run.json (no-op when there is none)."""
    record = read_run_record(run_dir)
    if record is not None:
        write_run_record(run_dir, record.model_copy(update={"ended_at": now_iso()}))


def resolve_tasks_file(record: RunRecord, run_dir: str | os.PathLike) -> Path | None:
    """The task file the record names, when it was a file: as stored (absolute, or relative to the
    working directory or the run folder), else its stored absolute path. None for a dataset name or no source.
    RunRecordError when the file named is gone."""
    source = record.tasks.source
    if not source:
        return None
    candidates = [Path(source)]
    if not Path(source).is_absolute():
        candidates.append(Path(run_dir) / source)
    if record.tasks.source_abs:
        candidates.append(Path(record.tasks.source_abs))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looks_like_file = record.tasks.source_abs or Path(source).suffix in {".json", ".jsonl", ".parquet"}
    if not looks_like_file:
        return None  # a dataset name
    raise RunRecordError(f"{Path(run_dir) / RUN_RECORD}: the task file {source!r} it names is gone (moved or "
                         "deleted); pass --tasks FILE")
