"""Scores of multi-attempt runs (`swerve run --attempts N`): pass@k, mean pass@1 with a
bootstrap interval, per-task solve counts, the spread across attempts, and the pass@k
curve for the HTML report.

pass@k uses the unbiased estimator of Chen et al. (2021): with n attempts of which c
resolved, pass@k = 1 - C(n-c, k) / C(n, k), averaged over tasks. When attempts are
independent draws that each resolve with probability p, its expectation is exactly
1 - (1-p)^k. The interval resamples tasks, then attempts within each task, so it covers
both the choice of tasks and the luck of the draws.

Reads files only: RUN/run.json (kind "attempts") and each attempt folder's
instances/ID/report.json (or its trajectories' grades).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from swerve.schema import Grade

ATTEMPTS_DIR = "attempts"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k attempts drawn without replacement from n
    (c of them correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def is_multi_attempt(run_dir: str | Path) -> bool:
    manifest = Path(run_dir) / "run.json"
    if not manifest.exists():
        return False
    try:
        return json.loads(manifest.read_text()).get("kind") == "attempts"
    except ValueError:
        return False


def attempt_folders(run_dir: str | Path) -> dict[int, Path]:
    """Attempt number -> its run folder, read from each folder's run.json."""
    found: dict[int, Path] = {}
    for manifest in sorted((Path(run_dir) / ATTEMPTS_DIR).glob("*/run.json")):
        attempt = json.loads(manifest.read_text()).get("attempt")
        if attempt is not None:
            found[int(attempt)] = manifest.parent
    return dict(sorted(found.items()))


def read_outcomes_by_attempt(run_dir: str | Path) -> dict[str, dict[int, bool]]:
    """Instance id -> {attempt number: resolved} over the graded attempts."""
    outcomes: dict[str, dict[int, bool]] = {}
    for attempt, folder in attempt_folders(run_dir).items():
        for report in sorted((folder / "instances").glob("*/report.json")):
            grade = _grade_in(json.loads(report.read_text()), report.parent.name)
            outcomes.setdefault(grade.instance_id, {})[attempt] = bool(grade.resolved)
    return outcomes


def _grade_in(data: dict[str, Any], folder_name: str) -> Grade:
    """report.json holds {instance_id: grade} (SWE-bench's shape) or the grade itself."""
    if folder_name in data:
        return Grade.model_validate(data[folder_name])
    if "instance_id" not in data and len(data) == 1:
        return Grade.model_validate(next(iter(data.values())))
    return Grade.model_validate(data)


def read_outcomes(run_dir: str | Path) -> dict[str, list[bool]]:
    """Instance id -> resolved per graded attempt, in attempt order (ungraded ones left out)."""
    return {iid: [by[a] for a in sorted(by)] for iid, by in read_outcomes_by_attempt(run_dir).items()}


SELECTIONS_DIR = "selections"


def selection_rates(run_dir: str | Path) -> dict[str, float]:
    """Resolved rate of each `swerve select` result in RUN/selections/STRATEGY.jsonl, read off
    the graded attempt each row names (its `attempt` field); a task with no pick counts as
    unresolved."""
    outcomes = read_outcomes_by_attempt(run_dir)
    rates: dict[str, float] = {}
    for path in sorted((Path(run_dir) / SELECTIONS_DIR).glob("*.jsonl")):
        picks = {}
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                picks[row["instance_id"]] = row.get("attempt")
        if not outcomes:
            continue
        resolved = sum(
            1 for iid, results in outcomes.items()
            if results.get(picks.get(iid))
        )
        rates[path.stem] = resolved / len(outcomes)
    return rates


@dataclass
class AttemptScores:
    tasks: int
    attempts: int
    pass_at: dict[int, float]
    pass_at_ci: dict[int, tuple[float, float]]
    mean_pass_at_1: float
    mean_pass_at_1_ci: tuple[float, float]
    per_attempt_rate: list[float]
    solves: dict[str, int] = field(default_factory=dict)

    @property
    def spread(self) -> dict[str, float]:
        """How much a single attempt's resolved rate varies from attempt to attempt."""
        rates = self.per_attempt_rate
        mean = sum(rates) / len(rates) if rates else 0.0
        std = (sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)) ** 0.5 if len(rates) > 1 else 0.0
        return {"min": min(rates, default=0.0), "max": max(rates, default=0.0), "std": std}

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "attempts": self.attempts,
            "pass_at_k": {str(k): v for k, v in self.pass_at.items()},
            "pass_at_k_ci": {str(k): list(v) for k, v in self.pass_at_ci.items()},
            "mean_pass_at_1": self.mean_pass_at_1,
            "mean_pass_at_1_ci": list(self.mean_pass_at_1_ci),
            "per_attempt_resolved_rate": self.per_attempt_rate,
            "spread": self.spread,
            "solves": self.solves,
        }


def score_attempts(outcomes: dict[str, list[bool]], *, samples: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> AttemptScores:
    """pass@k for k = 1..n (n = the fewest attempts any task has), with intervals from a
    two-level bootstrap (tasks, then attempts within a task)."""
    if not outcomes:
        raise ValueError("no graded attempts to score; run with --evaluate (or swerve eval each attempt) first")
    n = min(len(results) for results in outcomes.values())
    ids = sorted(outcomes)
    counts = {iid: sum(outcomes[iid][:n]) for iid in ids}
    point = {k: sum(pass_at_k(n, counts[iid], k) for iid in ids) / len(ids) for k in range(1, n + 1)}
    rng = random.Random(seed)
    draws: dict[int, list[float]] = {k: [] for k in point}
    for _ in range(samples):
        chosen = [outcomes[rng.choice(ids)][:n] for _ in ids]
        resampled = [sum(rng.choice(results) for _ in range(n)) for results in chosen]
        for k in point:
            draws[k].append(sum(pass_at_k(n, c, k) for c in resampled) / len(resampled))
    tail = (1 - confidence) / 2
    intervals = {k: _quantiles(values, tail) for k, values in draws.items()}
    per_attempt = [sum(outcomes[iid][a] for iid in ids) / len(ids) for a in range(n)]
    return AttemptScores(
        tasks=len(ids), attempts=n, pass_at=point, pass_at_ci=intervals,
        mean_pass_at_1=point[1], mean_pass_at_1_ci=intervals[1], per_attempt_rate=per_attempt, solves=counts,
    )


def compare_attempts(baseline: dict[str, list[bool]], run: dict[str, list[bool]], *, samples: int = 2000,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Mean pass@1 of `run` minus `baseline` over the tasks both graded, with a paired
    bootstrap interval (tasks resampled together, each task's per-attempt rate kept)."""
    shared = sorted(set(baseline) & set(run))
    if not shared:
        raise ValueError("the runs share no graded task; compare runs of the same task set")
    rate = {iid: (sum(run[iid]) / len(run[iid]), sum(baseline[iid]) / len(baseline[iid])) for iid in shared}
    difference = sum(r - b for r, b in rate.values()) / len(shared)
    rng = random.Random(seed)
    draws = []
    for _ in range(samples):
        chosen = [rate[rng.choice(shared)] for _ in shared]
        draws.append(sum(r - b for r, b in chosen) / len(chosen))
    low, high = _quantiles(draws, (1 - confidence) / 2)
    return {"paired_tasks": len(shared), "run_pass_at_1": sum(r for r, _ in rate.values()) / len(shared),
            "baseline_pass_at_1": sum(b for _, b in rate.values()) / len(shared),
            "difference": difference, "ci_low": low, "ci_high": high}


def _quantiles(values: list[float], tail: float) -> tuple[float, float]:
    ordered = sorted(values)
    low = ordered[int(tail * (len(ordered) - 1))]
    high = ordered[int(round((1 - tail) * (len(ordered) - 1)))]
    return low, high


def pass_at_k_table(scores: AttemptScores):
    """One row per k: pass@k and its interval."""
    import pandas as pd

    return pd.DataFrame([
        {"k": k, "pass@k": value, "CI low": scores.pass_at_ci[k][0], "CI high": scores.pass_at_ci[k][1]}
        for k, value in scores.pass_at.items()
    ])


def solves_table(scores: AttemptScores):
    """One row per task: how many of the n attempts resolved it."""
    import pandas as pd

    return pd.DataFrame([
        {"instance_id": iid, "resolved attempts": c, "attempts": scores.attempts, "pass@1": c / scores.attempts}
        for iid, c in sorted(scores.solves.items())
    ])


def pass_at_k_plot(scores: AttemptScores, selected: dict[str, float] | None = None) -> str:
    """The pass@k curve with its interval band (base64 PNG); selected-patch rates as lines."""
    from swerve.reports.plots import _encode, _figure

    plt, figure, axes = _figure()
    ks = list(scores.pass_at)
    axes.plot(ks, [scores.pass_at[k] for k in ks], marker="o", color="#0969da", label="pass@k")
    axes.fill_between(ks, [scores.pass_at_ci[k][0] for k in ks], [scores.pass_at_ci[k][1] for k in ks],
                      color="#0969da", alpha=0.15, label="95% bootstrap interval")
    for index, (name, rate) in enumerate(sorted((selected or {}).items())):
        axes.axhline(rate, linestyle="--", color=f"C{index + 1}", label=f"selected: {name}")
    axes.set_xlabel("k (attempts)")
    axes.set_ylabel("resolved")
    axes.set_ylim(0, 1.02)
    axes.set_xticks(ks)
    axes.set_title(f"pass@k over {scores.tasks} tasks, {scores.attempts} attempts each")
    axes.legend(loc="lower right", fontsize=8)
    return _encode(plt, figure)


def attempts_html(name: str, scores: AttemptScores, selected: dict[str, float] | None = None) -> str:
    """A self-contained HTML page: headline figures, the pass@k curve and the tables."""
    from html import escape

    from swerve.reports.html import html_table

    spread = scores.spread
    low, high = scores.mean_pass_at_1_ci
    cards = [
        ("tasks", scores.tasks), ("attempts per task", scores.attempts),
        ("mean pass@1", f"{scores.mean_pass_at_1:.3f} [{low:.3f}, {high:.3f}]"),
        (f"pass@{scores.attempts} (upper bound of selection)", f"{scores.pass_at[scores.attempts]:.3f}"),
        ("per-attempt rate min / max / std", f"{spread['min']:.3f} / {spread['max']:.3f} / {spread['std']:.3f}"),
        *((f"selected ({key})", f"{value:.3f}") for key, value in sorted((selected or {}).items())),
    ]
    card_html = "".join(f"<div class='card'><div class='label'>{escape(str(k))}</div><div class='value'>"
                        f"{escape(str(v))}</div></div>" for k, v in cards)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>swerve attempts: " + escape(name) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em}.card{display:inline-block;margin:.4em;padding:.6em;"
        "border:1px solid #d0d7de;border-radius:6px}.label{color:#57606a;font-size:.8em}.value{font-size:1.2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.2em .6em}</style></head><body>"
        f"<h1>{escape(name)}: many attempts per task</h1>{card_html}"
        f"<h2>pass@k</h2><img alt='pass@k curve' src='data:image/png;base64,{pass_at_k_plot(scores, selected)}'>"
        + html_table(pass_at_k_table(scores), table_id="pass-at-k")
        + "<h2>Resolved attempts per task</h2>" + html_table(solves_table(scores), table_id="solves")
        + "</body></html>"
    )
