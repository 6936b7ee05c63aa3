"""Teacher data: run a policy, keep the trajectories that resolved, export them for SFT.

`teach()` is `swerve teach`: a graded batch run into OUT, then
OUT/teacher/trajectories.jsonl (the kept trajectories) and
OUT/teacher/train.parquet (chat `messages` + `tools` rows, plus `input_ids` and
`assistant_masks` when a tokenizer is given) that TRL's SFTTrainer loads with
`datasets.load_dataset("parquet", data_files=...)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swerve.agents.batch import TRAJECTORIES, BatchResult, run_batch
from swerve.agents.trajectory import export_sft_parquet, read_trajectories, rewrite_trajectories
from swerve.fileio import atomic_write_json
from swerve.schema import Task, Trajectory

TEACHER_DIR = "teacher"


@dataclass
class TeachResult:
    batch: BatchResult
    kept: list[str]
    dataset_path: Path
    trajectories_path: Path
    rows: int


def keep_for_teaching(trajectory: Trajectory, require_submitted: bool = True) -> bool:
    """A trajectory is teacher data when it was graded resolved (and, by default, ended by submitting)."""
    if trajectory.grade is None or not trajectory.grade.resolved:
        return False
    return trajectory.exit_status == "submitted" or not require_submitted


def teach(
    tasks: Iterable[Task],
    policy_factory: Callable[[Task], Any],
    *,
    out_dir: str | os.PathLike,
    tokenizer: Any = None,
    require_submitted: bool = True,
    **batch_options: Any,
) -> TeachResult:
    """Run, grade, keep the resolved trajectories and export them as a parquet SFT dataset."""
    out = Path(out_dir)
    batch_options.setdefault("record_kind", "teach")
    batch = run_batch(tasks, policy_factory, out_dir=out, evaluate=True, **batch_options)
    return export_teacher_data(out, tokenizer=tokenizer, require_submitted=require_submitted, batch=batch)


def export_teacher_data(
    out_dir: str | os.PathLike,
    *,
    tokenizer: Any = None,
    require_submitted: bool = True,
    batch: BatchResult | None = None,
) -> TeachResult:
    """Export the resolved trajectories of an already graded run directory."""
    out = Path(out_dir)
    kept = [t for t in read_trajectories(out / TRAJECTORIES) if keep_for_teaching(t, require_submitted)]
    teacher = out / TEACHER_DIR
    trajectories_path = teacher / "trajectories.jsonl"
    dataset_path = teacher / "train.parquet"
    rewrite_trajectories(trajectories_path, kept)
    rows = export_sft_parquet(kept, dataset_path, tokenizer=tokenizer)
    atomic_write_json(
        teacher / "dataset_info.json",
        {
            "rows": rows,
            "instance_ids": [t.instance_id for t in kept],
            "columns": ["instance_id", "messages", "tools", "exit_status", "resolved", "policy"]
            + (["input_ids", "assistant_masks"] if tokenizer is not None else []),
            "loss": "assistant-only: train on assistant turns (assistant_masks when tokenised)",
            "load_with": f"datasets.load_dataset('parquet', data_files='{dataset_path}')",
        },
    )
    return TeachResult(
        batch=batch or BatchResult(out_dir=out, run_id=""),
        kept=[t.instance_id for t in kept],
        dataset_path=dataset_path,
        trajectories_path=trajectories_path,
        rows=rows,
    )
