"""The slice of genuine SWE-bench rows in ../shared/swebench-slice (read-only):
rows with `repo_source` pointing at its bare repositories, and the predictions."""

from __future__ import annotations

import json
import os
from pathlib import Path

SLICE = Path(os.environ.get("SWERVE_SWEBENCH_SLICE", Path(__file__).resolve().parents[3] / "shared" / "swebench-slice"))


def repo_url(repo: str) -> str:
    return (SLICE / "repos" / f"{repo.replace('/', '__')}.git").resolve().as_uri()


def slice_rows() -> list[dict]:
    """The published rows, each with repo_source set to its local bare repository."""
    rows = [json.loads(line) for line in (SLICE / "rows.jsonl").read_text().splitlines() if line.strip()]
    return [{**row, "repo_source": repo_url(row["repo"])} for row in rows]


def write_slice_rows(path: Path, rows: list[dict] | None = None) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in (rows if rows is not None else slice_rows())))
    return path


def slice_predictions() -> list[dict]:
    return [json.loads(line) for line in (SLICE / "devin_predictions.jsonl").read_text().splitlines() if line.strip()]
