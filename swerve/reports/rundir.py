"""Read a run directory in the agreed layout, streaming, and never give up on the
whole run because one file is bad.

    RUN_DIR/run.json, predictions.jsonl, trajectories.jsonl, summary.json,
    instances/<instance_id>/{report.json, patch.diff, base_files.json, ...}

Every problem (a torn last line, a line that is not JSON, a report that does not
validate, a missing manifest) is recorded as a `Problem` naming the file and line;
the reader skips what is at fault and goes on. `trajectories.jsonl` is read one line
at a time, so a 10,000-trajectory run is never held in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swerve.errors import SwerveError
from swerve.runrecord import RunRecord, RunRecordError, parse_run_record
from swerve.schema import Grade, Trajectory


class RunDirError(SwerveError, ValueError):
    """The path given is not a run directory at all."""


@dataclass(frozen=True)
class Problem:
    """Something at fault in a run directory; the report lists these and carries on."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


def _validation_summary(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(top level)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"field {where}: {first.get('msg', 'invalid')}{more}"


class RunDir:
    """One run directory. Problems found while reading are appended to `problems`."""

    def __init__(self, path: str | Path, problems: list[Problem] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: not a directory; pass a run directory written by `swerve run` or `swerve eval`")
        markers = ("run.json", "trajectories.jsonl", "predictions.jsonl", "summary.json", "instances")
        if not any((self.path / marker).exists() for marker in markers):
            raise RunDirError(
                f"{self.path}: no run.json, trajectories.jsonl, summary.json or instances/ here; "
                "pass the RUN_DIR itself (e.g. OUTPUT/RUN_ID), not its parent"
            )
        self.problems: list[Problem] = problems if problems is not None else []
        self.manifest: dict[str, Any] = self._read_manifest()
        self.summary: dict[str, Any] | None = self._read_json_object(self.path / "summary.json", required=False)

    # ------------------------------------------------------------ helpers

    def problem(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(path=str(path), message=message, line=line))

    def _read_json_object(self, path: Path, *, required: bool) -> dict[str, Any] | None:
        if not path.is_file():
            if required:
                self.problem(path, "missing")
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.problem(path, f"not valid JSON ({getattr(exc, 'msg', exc)}); skipped")
            return None
        if not isinstance(data, dict):
            self.problem(path, f"expected a JSON object, found {type(data).__name__}; skipped")
            return None
        return data

    def _read_manifest(self) -> dict[str, Any]:
        manifest = self._read_json_object(self.path / "run.json", required=True)
        return manifest or {}

    @property
    def record(self) -> RunRecord | None:
        """run.json as a swerve.runrecord.RunRecord (older shapes mapped); None when missing or
        unreadable (then a problem names the file and what is wrong)."""
        if not hasattr(self, "_record"):
            self._record: RunRecord | None = None
            if self.manifest:
                try:
                    self._record = parse_run_record(self.manifest, self.path / "run.json")
                except RunRecordError as exc:
                    self.problem(self.path / "run.json", str(exc))
        return self._record

    # ------------------------------------------------------------ manifest

    @property
    def name(self) -> str:
        """The run's id from run.json, else the directory name."""
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def settings(self) -> dict[str, Any]:
        settings = self.manifest.get("settings")
        return settings if isinstance(settings, dict) else {}

    @property
    def model(self) -> str:
        """The model name the run stored, else its policy spec, else ""."""
        record = self.record
        if record is None:
            return ""
        return record.model_name or record.policy or ""

    # ------------------------------------------------------------ JSONL streams

    def iter_jsonl(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, object) for each good line of RUN_DIR/name, one line at a time.
        A torn last line, a bad line or a non-object is recorded as a problem and skipped."""
        path = self.path / name
        if not path.is_file():
            return
        with open(path, "rb") as handle:
            number = 0
            for raw in handle:
                number += 1
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    if not raw.endswith(b"\n"):
                        self.problem(path, "torn last line (the run was killed mid-write?); skipped", number)
                    else:
                        self.problem(path, f"not valid JSON ({getattr(exc, 'msg', exc)}); skipped", number)
                    continue
                if not isinstance(data, dict):
                    self.problem(path, f"expected a JSON object, found {type(data).__name__}; skipped", number)
                    continue
                yield number, data

    def iter_trajectories(self) -> Iterator[Trajectory]:
        """Each valid trajectory in trajectories.jsonl; invalid ones become problems."""
        path = self.path / "trajectories.jsonl"
        for number, data in self.iter_jsonl("trajectories.jsonl"):
            try:
                yield Trajectory.model_validate(data)
            except ValidationError as exc:
                self.problem(path, f"not a trajectory: {_validation_summary(exc)}; skipped", number)

    def read_predictions(self) -> dict[str, str | None]:
        """model_patch by instance_id from predictions.jsonl (later lines win)."""
        patches: dict[str, str | None] = {}
        path = self.path / "predictions.jsonl"
        for number, data in self.iter_jsonl("predictions.jsonl"):
            instance_id = data.get("instance_id")
            if not isinstance(instance_id, str) or not instance_id:
                self.problem(path, "prediction without instance_id; skipped", number)
                continue
            patch = data.get("model_patch")
            patches[instance_id] = patch if isinstance(patch, str) else None
        return patches

    # ------------------------------------------------------------ instances

    def instance_dir(self, instance_id: str) -> Path:
        return self.path / "instances" / instance_id

    def instance_ids(self) -> list[str]:
        """Instance directories on disk, sorted."""
        root = self.path / "instances"
        if not root.is_dir():
            return []
        return sorted(entry.name for entry in root.iterdir() if entry.is_dir())

    def read_grade(self, instance_id: str) -> Grade | None:
        """The Grade in instances/<id>/report.json ({instance_id: Grade}); None when absent or bad."""
        path = self.instance_dir(instance_id) / "report.json"
        data = self._read_json_object(path, required=False)
        if data is None:
            return None
        entry = data.get(instance_id)
        if entry is None and len(data) == 1:
            key, entry = next(iter(data.items()))
            self.problem(path, f"keyed by {key!r}, expected {instance_id!r}; used it anyway")
        if not isinstance(entry, dict):
            self.problem(path, f"no entry for {instance_id!r}; skipped")
            return None
        entry = {"instance_id": instance_id, **entry}
        try:
            return Grade.model_validate(entry)
        except ValidationError as exc:
            self.problem(path, f"not a grade: {_validation_summary(exc)}; skipped")
            return None

    def read_infra_error(self, instance_id: str) -> str | None:
        """instances/<id>/error.json: the evaluator gave up on this instance after
        retrying infra failures (no report.json then). Returns the error text."""
        data = self._read_json_object(self.instance_dir(instance_id) / "error.json", required=False)
        if data is None:
            return None
        return str(data.get("error") or "infra error")

    def read_base_files(self, instance_id: str) -> dict[str, str | None] | None:
        """instances/<id>/base_files.json ({path: text or null}); None when absent or bad."""
        path = self.instance_dir(instance_id) / "base_files.json"
        data = self._read_json_object(path, required=False)
        if data is None:
            return None
        if not all(isinstance(value, (str, type(None))) for value in data.values()):
            self.problem(path, "values must be file text or null; skipped")
            return None
        return data

    def read_patch(self, instance_id: str) -> str | None:
        """instances/<id>/patch.diff: the patch the evaluator applied."""
        path = self.instance_dir(instance_id) / "patch.diff"
        if not path.is_file():
            return None
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            self.problem(path, "not UTF-8 text; skipped")
            return None

    def read_task_row(self, instance_id: str) -> dict[str, Any] | None:
        """instances/<id>/task.json when the run stored the task there."""
        return self._read_json_object(self.instance_dir(instance_id) / "task.json", required=False)
