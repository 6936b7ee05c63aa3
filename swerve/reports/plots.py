"""The report's plots, drawn with matplotlib (Agg) and returned as base64 PNG so the
HTML report stays one file that opens from disk."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Sequence

import pandas as pd

from swerve.reports.scan import RunScan


def _figure(width: float = 6.4, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, height), dpi=100)
    return plt, figure, axes


def _encode(plt, figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _no_data(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="#57606a")
    axes.set_xticks([])
    axes.set_yticks([])


def resolved_by_repo(repos_table: pd.DataFrame, runs: Sequence[str]) -> str:
    """Grouped bars: resolved rate per repository (`group_table(scans, "repo")`), one bar per run."""
    plt, figure, axes = _figure()
    table = repos_table.dropna(subset=["resolved_rate"])
    if table.empty:
        _no_data(axes, "no graded instances")
    else:
        repos = sorted(table["repo"].unique())
        width = 0.8 / max(len(runs), 1)
        for offset, run in enumerate(runs):
            rates = table[table["run"] == run].set_index("repo")["resolved_rate"]
            axes.bar(
                [i + offset * width - 0.4 + width / 2 for i in range(len(repos))],
                [rates.get(repo, 0.0) for repo in repos],
                width=width,
                label=run,
            )
        axes.set_xticks(range(len(repos)))
        axes.set_xticklabels(repos, rotation=20, ha="right", fontsize=8)
        axes.set_ylim(0, 1)
        axes.set_ylabel("resolved rate")
        axes.legend(fontsize=8)
    axes.set_title("Resolved rate by repository")
    return _encode(plt, figure)


def _histogram(scans: Sequence[RunScan], field: str, title: str, xlabel: str, empty: str) -> str:
    plt, figure, axes = _figure()
    series = {scan.name: [getattr(row, field) for row in scan.rows if getattr(row, field) is not None] for scan in scans}
    values = [value for items in series.values() for value in items]
    if not values:
        _no_data(axes, empty)
    else:
        low, high = min(values), max(values)
        bins = 20 if high > low else 1
        for run, items in series.items():
            if items:
                axes.hist(items, bins=bins, range=(low, high if high > low else low + 1), histtype="step", linewidth=1.8, label=run)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("instances")
        axes.legend(fontsize=8)
    axes.set_title(title)
    return _encode(plt, figure)


def edit_distance_distribution(scans: Sequence[RunScan]) -> str:
    return _histogram(
        scans,
        "edit_distance_normalised",
        "Edit distance to the gold result",
        "line edit distance / gold changed lines",
        "no edit distances (needs gold patches and base_files.json)",
    )


def steps_distribution(scans: Sequence[RunScan]) -> str:
    return _histogram(scans, "steps", "Steps per trajectory", "steps", "no trajectories (evaluation-only run)")


def revert_rate_against_resolved(scans: Sequence[RunScan], seed: int = 0) -> str:
    """Each trajectory's revert rate, split by resolved / not resolved (jittered points
    and the mean as a bar), one pair per run."""
    plt, figure, axes = _figure()
    rng = random.Random(seed)
    positions, labels, drawn = [], [], False
    for index, scan in enumerate(scans):
        for outcome, offset, color in ((True, -0.2, "#1a7f37"), (False, 0.2, "#cf222e")):
            rates = [
                row.revert_rate for row in scan.rows if row.revert_rate is not None and bool(row.resolved) is outcome
            ]
            x = index + offset
            positions.append(x)
            labels.append(f"{scan.name}\n{'resolved' if outcome else 'unresolved'}")
            if rates:
                drawn = True
                shown = rates if len(rates) <= 2000 else rng.sample(rates, 2000)
                axes.scatter([x + rng.uniform(-0.08, 0.08) for _ in shown], shown, s=6, alpha=0.35, color=color)
                axes.bar(x, sum(rates) / len(rates), width=0.3, alpha=0.25, color=color)
    if not drawn:
        _no_data(axes, "no revert rates (needs trajectories with edits)")
    else:
        axes.set_xticks(positions)
        axes.set_xticklabels(labels, fontsize=7)
        axes.set_ylim(-0.05, 1.05)
        axes.set_ylabel("revert rate")
    axes.set_title("Revert rate against resolved")
    return _encode(plt, figure)


def all_plots(scans: Sequence[RunScan], repos_table: pd.DataFrame) -> dict[str, str]:
    """Caption -> base64 PNG; `repos_table` is the report's `group_table(scans, "repo")`."""
    return {
        "Resolved rate by repository": resolved_by_repo(repos_table, [scan.name for scan in scans]),
        "Distribution of normalised edit distance": edit_distance_distribution(scans),
        "Distribution of steps": steps_distribution(scans),
        "Revert rate against resolved (bars: mean)": revert_rate_against_resolved(scans),
    }
