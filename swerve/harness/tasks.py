"""Load tasks and predictions in SWE-bench's forms.

Tasks come from JSON / JSONL / parquet files or a Hugging Face dataset name
(`princeton-nlp/SWE-bench_Verified`, `name:split`). Predictions come as JSONL,
a JSON list, a JSON dict keyed by instance id, or the special values `gold`
(each task's own patch) and `empty` (no patch). Every bad row raises
TaskFormatError naming the file, the row and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swerve.errors import TaskFormatError
from swerve.fileio import describe_bad_utf8
from swerve.schema import Prediction, Task

log = logging.getLogger(__name__)

_FILE_SUFFIXES = (".json", ".jsonl", ".parquet")


def _describe_validation(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or "(row)"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"field {field!r}: {first.get('msg', 'invalid')}{more}"


def _not_utf8(path: Path, raw: bytes, error: UnicodeDecodeError, line: int | None = None) -> TaskFormatError:
    return TaskFormatError(describe_bad_utf8(path, raw, error, line=line))


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, raw, exc) from None


def _read_json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(row label, row) from a JSON file holding a list or a dict of rows."""
    try:
        data = json.loads(_read_utf8(path))
    except json.JSONDecodeError as exc:
        raise TaskFormatError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); expected a list of rows") from exc
    if isinstance(data, dict):
        if "instance_id" in data:
            yield "row 1", data
            return
        for key, value in data.items():
            if isinstance(value, dict):
                value = {"instance_id": key, **value}
            yield f"key {key!r}", value
        return
    if not isinstance(data, list):
        raise TaskFormatError(f"{path}: expected a JSON list (or dict keyed by instance_id), got {type(data).__name__}")
    for number, row in enumerate(data, start=1):
        yield f"row {number}", row


def _read_jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, raw, exc, line=number) from None
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFormatError(f"{path}:{number}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc


def _read_parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise TaskFormatError(f"{path}: not a readable parquet file ({exc})") from exc
    for number, row in enumerate(table.to_pylist(), start=1):
        yield f"row {number}", row


def _read_dataset_rows(name: str) -> Iterator[tuple[str, Any]]:
    """A Hugging Face dataset: `owner/name` (split test) or `owner/name:split`."""
    import datasets

    dataset_name, _, split = name.partition(":")
    try:
        rows = datasets.load_dataset(dataset_name, split=split or "test")
    except Exception as exc:
        raise TaskFormatError(
            f"{name}: not a task file and could not be loaded as a Hugging Face dataset ({type(exc).__name__}: {exc}); "
            "pass a .json/.jsonl/.parquet file or a dataset name like owner/name[:split]"
        ) from exc
    for number, row in enumerate(rows, start=1):
        yield f"row {number}", row


def _rows(source: str | Path) -> tuple[str, Iterable[tuple[str, Any]]]:
    path = Path(source)
    text = str(source)
    if path.exists():
        if path.is_dir():
            raise TaskFormatError(f"{path}: is a directory; pass a .json, .jsonl or .parquet file")
        if path.suffix == ".parquet":
            return str(path), _read_parquet_rows(path)
        if path.suffix == ".jsonl":
            return str(path), _read_jsonl_rows(path)
        if path.suffix == ".json":
            return str(path), _read_json_rows(path)
        head = path.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
        return str(path), (_read_json_rows(path) if head == "[" else _read_jsonl_rows(path))
    if text.endswith(_FILE_SUFFIXES) or text.startswith((".", "/", "~")):
        raise TaskFormatError(f"{text}: no such file; check the path")
    return text, _read_dataset_rows(text)


def _validated(model, row: Any, label: str, where: str, expected: str):
    """`row` as a `model`, or TaskFormatError naming the file, the row and the field."""
    if not isinstance(row, dict):
        raise TaskFormatError(f"{label}: {where}: expected {expected}, got {type(row).__name__}")
    try:
        return model.model_validate(row)
    except ValidationError as exc:
        ident = row.get("instance_id")
        who = f" (instance {ident!r})" if isinstance(ident, str) else ""
        raise TaskFormatError(f"{label}: {where}{who}: {_describe_validation(exc)}") from None


REQUIRED_BECAUSE = {
    "FAIL_TO_PASS": "grading needs the tests that the fix makes pass",
    "patch": "--predictions gold and the oracle policies replay the gold patch",
}


def load_tasks(source: str | Path, instance_ids: Iterable[str] | None = None, *, resolve_specs: bool = True,
               require: Iterable[str] = ()) -> list[Task]:
    """Tasks from a file or dataset, in file order, optionally filtered to `instance_ids`.

    Genuine SWE-bench rows (an environment_setup_commit, no test_cmd/install_cmd/eval_script
    of their own) get their official environment from SWE-bench's specs unless
    `resolve_specs` is False: Python version, install command, pinned packages (read
    from the row's repository at environment_setup_commit), test command and parser.

    Raises TaskFormatError for a bad row (naming file, row, field), a duplicate
    instance_id, a requested instance id that is not in the source, a source with
    no rows, or a row whose field named in `require` (FAIL_TO_PASS, patch, ...) is
    missing or empty.
    """
    label, rows = _rows(source)
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    required = list(require)
    for where, row in rows:
        task = _validated(Task, row, label, where, "a JSON object")
        if task.instance_id in seen:
            raise TaskFormatError(
                f"{label}: {where}: duplicate instance_id {task.instance_id!r} (first at {seen[task.instance_id]}); "
                "instance ids must be unique"
            )
        seen[task.instance_id] = where
        tasks.append(task)
    if not tasks:
        raise TaskFormatError(f"{label}: holds no tasks; a task file has one SWE-bench row per line (JSONL), "
                              "a JSON list of rows, or parquet rows")
    if instance_ids:
        wanted = list(dict.fromkeys(instance_ids))
        missing = [i for i in wanted if i not in seen]
        if missing:
            raise TaskFormatError(f"{label}: no task with instance_id {', '.join(map(repr, missing))}")
        keep = set(wanted)
        tasks = [task for task in tasks if task.instance_id in keep]
    for task in tasks:
        for name in required:
            value = getattr(task, name)
            if not (value.strip() if isinstance(value, str) else value):
                why = REQUIRED_BECAUSE.get(name, "this command needs it")
                raise TaskFormatError(f"{label}: {seen[task.instance_id]} (instance {task.instance_id!r}): field "
                                      f"{name!r} is missing or empty; {why}")
    if resolve_specs:
        tasks = _with_swebench_specs(tasks)
    return tasks


def _with_swebench_specs(tasks: list[Task]) -> list[Task]:
    """Genuine SWE-bench rows get their official environment (swerve.harness.swebench);
    a row no spec covers keeps loading, with `spec_error` saying why (logged once here)."""
    from swerve.harness.swebench import resolve_rows

    resolved = resolve_rows(tasks)
    for task in resolved:
        if task.spec_error:
            log.warning("%s", task.spec_error)
    return resolved


def _special_predictions(kind: str, tasks: Iterable[Task] | None) -> dict[str, Prediction]:
    if tasks is None:
        raise TaskFormatError(f"predictions {kind!r} need the tasks (pass tasks=...)")
    if kind == "gold":
        return {t.instance_id: Prediction(instance_id=t.instance_id, model_name_or_path="gold", model_patch=t.patch) for t in tasks}
    return {t.instance_id: Prediction(instance_id=t.instance_id, model_name_or_path="empty", model_patch="") for t in tasks}


def load_predictions(source: str | Path, tasks: Iterable[Task] | None = None) -> dict[str, Prediction]:
    """Predictions keyed by instance id.

    `source` is a JSONL file, a JSON list, a JSON dict keyed by instance id, or
    `gold` / `empty`. A duplicate instance id is an error (which patch would count?).
    """
    text = str(source)
    if text in ("gold", "empty"):
        return _special_predictions(text, tasks)
    path = Path(text)
    if not path.exists():
        raise TaskFormatError(f"{text}: no such predictions file; pass a .jsonl/.json file, or gold, or empty")
    label, rows = _rows(path)
    predictions: dict[str, Prediction] = {}
    for where, row in rows:
        prediction = _validated(Prediction, row, label, where, "a JSON object with instance_id and model_patch")
        if prediction.instance_id in predictions:
            raise TaskFormatError(f"{label}: {where}: duplicate prediction for {prediction.instance_id!r}")
        predictions[prediction.instance_id] = prediction
    if not predictions:
        raise TaskFormatError(f"{label}: holds no predictions; each line needs instance_id and model_patch "
                              "(or pass --predictions gold / empty)")
    return predictions
