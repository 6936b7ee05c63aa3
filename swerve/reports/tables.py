"""pandas tables over scanned runs: per task, per repository, per difficulty, per run,
and runs compared with a paired bootstrap confidence interval.

Group tables reuse `run_metrics` on each group, so a rate means the same thing in
every table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from swerve.reports.metrics import InstanceMetrics, run_metrics
from swerve.reports.scan import RunScan

TASK_COLUMNS = [
    "run", "instance_id", "repo", "difficulty", "resolved", "failure_class", "f2p_fraction",
    "p2p_fraction", "p2p_broken", "edit_distance", "edit_distance_normalised", "patch_similarity",
    "revert_rate", "steps", "total_tokens", "model_time_s", "env_time_s", "format_errors",
    "tests_touched", "exit_status", "notes",
]  # fmt: skip
GROUP_COLUMNS = [
    "instances", "scored", "resolved", "resolved_rate", "f2p_fraction", "p2p_fraction",
    "regression_rate", "edit_distance_normalised_mean", "patch_similarity_mean", "revert_rate", "steps_mean",
]  # fmt: skip
RUN_COLUMNS = [
    "model", "kind", "instances", "graded", "infra_failures", "scored", "resolved", "resolved_rate",
    "f2p_fraction", "p2p_fraction", "regression_rate", "empty_patch_rate", "tests_touched_rate",
    "edit_distance_mean", "edit_distance_normalised_mean", "edit_distance_normalised_median",
    "patch_similarity_mean", "trajectories", "revert_rate", "revert_rate_mean", "steps_mean",
    "format_error_rate", "prompt_tokens_mean", "completion_tokens_mean", "total_tokens",
    "model_time_s", "env_time_s", "failure_classes", "problems",
]  # fmt: skip
COMPARE_COLUMNS = [
    "run", "baseline", "paired_instances", "run_resolved_rate", "baseline_resolved_rate",
    "difference", "ci_low", "ci_high", "run_only_resolved", "baseline_only_resolved",
]  # fmt: skip


def tasks_table(scans: Sequence[RunScan]) -> pd.DataFrame:
    """One row per (run, instance) with every per-instance score."""
    rows = [row.as_row() for scan in scans for row in scan.rows]
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=TASK_COLUMNS)
    ordered = TASK_COLUMNS + [column for column in frame.columns if column not in TASK_COLUMNS]
    return frame[ordered].reset_index(drop=True)


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}={count}" for name, count in counts.items())


def runs_table(scans: Sequence[RunScan]) -> pd.DataFrame:
    """One row per run with the run-level scores (index: run name)."""
    records = []
    for scan in scans:
        metrics = run_metrics(scan.rows)
        metrics["failure_classes"] = _format_counts(metrics["failure_classes"])
        records.append({"run": scan.name, "model": scan.model, "kind": scan.kind, **metrics, "problems": len(scan.problems)})
    frame = pd.DataFrame(records, columns=["run", *RUN_COLUMNS])
    return frame.set_index("run")


def runs_side_by_side(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs as columns, metrics as rows: easier to compare than a very wide table."""
    if runs.empty:
        return runs
    frame = runs.set_index("run").T.reset_index().rename(columns={"index": "metric"})
    frame.columns = [str(column) for column in frame.columns]
    return frame.astype(object)


def group_table(scans: Sequence[RunScan], by: str) -> pd.DataFrame:
    """Scores per run and per value of `by` (an InstanceMetrics field: repo, difficulty, model...)."""
    groups: dict[tuple[str, str], list[InstanceMetrics]] = defaultdict(list)
    for scan in scans:
        for row in scan.rows:
            groups[(scan.name, str(getattr(row, by) or "unknown"))].append(row)
    records = []
    for (run, value), rows in sorted(groups.items()):
        metrics = run_metrics(rows)
        records.append({"run": run, by: value, **{column: metrics[column] for column in GROUP_COLUMNS}})
    return pd.DataFrame(records, columns=["run", by, *GROUP_COLUMNS])


def paired_bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of mean(values - baseline), resampling instances (pairs).

    Resampling n pairs with replacement only changes how often each distinct
    difference is drawn, so the resampled means are drawn exactly from a multinomial
    over the distinct differences: O(samples x distinct values), not O(samples x n).
    """
    differences = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    n = differences.size
    if n == 0:
        return None
    distinct, counts = np.unique(differences, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=samples)
    means = draws @ distinct / n
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def compare_table(
    scans: Sequence[RunScan], *, baseline: int = 0, samples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """Each run against the baseline run (the first by default) on the instances both
    scored: the difference in resolved rate and its paired bootstrap CI."""
    records: list[dict[str, Any]] = []
    if len(scans) < 2:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    base = scans[baseline]
    base_resolved = {row.instance_id: bool(row.resolved) for row in base.rows if row.counts_for_model}
    for index, scan in enumerate(scans):
        if index == baseline:
            continue
        run_resolved = {row.instance_id: bool(row.resolved) for row in scan.rows if row.counts_for_model}
        common = sorted(set(base_resolved) & set(run_resolved))
        ours = np.array([run_resolved[i] for i in common], dtype=float)
        theirs = np.array([base_resolved[i] for i in common], dtype=float)
        interval = paired_bootstrap_ci(ours, theirs, samples=samples, confidence=confidence, seed=seed)
        records.append(
            {
                "run": scan.name,
                "baseline": base.name,
                "paired_instances": len(common),
                "run_resolved_rate": float(ours.mean()) if common else None,
                "baseline_resolved_rate": float(theirs.mean()) if common else None,
                "difference": float((ours - theirs).mean()) if common else None,
                "ci_low": interval[0] if interval else None,
                "ci_high": interval[1] if interval else None,
                "run_only_resolved": int(((ours == 1) & (theirs == 0)).sum()),
                "baseline_only_resolved": int(((ours == 0) & (theirs == 1)).sum()),
            }
        )
    return pd.DataFrame(records, columns=COMPARE_COLUMNS)


def problems_table(scans: Sequence[RunScan]) -> pd.DataFrame:
    records = [
        {"run": scan.name, "path": problem.path, "line": problem.line, "message": problem.message}
        for scan in scans
        for problem in scan.problems
    ]
    return pd.DataFrame(records, columns=["run", "path", "line", "message"])


def all_tables(scans: Sequence[RunScan], *, samples: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every table by name, in the order reports show them."""
    return {
        "runs": runs_table(scans).reset_index(),
        "compare": compare_table(scans, samples=samples, seed=seed),
        "repos": group_table(scans, "repo"),
        "difficulty": group_table(scans, "difficulty"),
        "tasks": tasks_table(scans),
        "problems": problems_table(scans),
    }
