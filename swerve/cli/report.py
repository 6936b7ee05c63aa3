"""`swerve report RUN_DIR [RUN_DIR ...]`: scores, tables and an HTML report for runs."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from swerve.cli import app


SHORT_HEADERS = {
    "instances": "n",
    "resolved_rate": "rate",
    "f2p_fraction": "F2P",
    "p2p_fraction": "P2P",
    "regression_rate": "regr",
    "edit_distance_normalised_mean": "edit/gold",
    "patch_similarity_mean": "sim",
    "revert_rate": "revert",
    "steps_mean": "steps",
    "paired_instances": "paired",
    "run_resolved_rate": "run rate",
    "baseline_resolved_rate": "base rate",
    "difference": "diff",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "run_only_resolved": "run only",
    "baseline_only_resolved": "base only",
}


MAX_PROBLEM_ROWS = 50
RICH_HIDDEN = ("scored", "regression_rate", "patch_similarity_mean")


class OutputFormat(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


class TableName(str, enum.Enum):
    all = "all"
    runs = "runs"
    compare = "compare"
    repos = "repos"
    difficulty = "difficulty"
    tasks = "tasks"
    problems = "problems"


def _print_rich(tables: dict, selected: list[str]) -> None:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from swerve.reports.html import format_value
    from swerve.reports.tables import runs_side_by_side

    console = Console() if sys.stdout.isatty() else Console(width=160)
    titles = {
        "runs": "Runs (side by side)",
        "compare": "Resolved rate against the first run (paired bootstrap 95% CI)",
        "repos": "By repository",
        "difficulty": "By difficulty",
        "tasks": "Per task",
        "problems": "Problems (file at fault; everything else was still reported)",
    }
    for name in selected:
        frame: pd.DataFrame = tables[name]
        if name == "runs":
            frame = runs_side_by_side(frame)
        if name == "problems" and len(frame) > MAX_PROBLEM_ROWS and len(selected) > 1:
            console.print(f"[yellow]{len(frame)} problems; the first {MAX_PROBLEM_ROWS} follow (all: --table problems)[/yellow]")
            frame = frame.head(MAX_PROBLEM_ROWS)
        if name in ("repos", "difficulty"):
            frame = frame.drop(columns=[c for c in RICH_HIDDEN if c in frame.columns])
        if frame.empty:
            if name not in ("compare", "problems"):
                console.print(f"[dim]{titles[name]}: nothing to show[/dim]")
            continue
        table = Table(title=titles[name], title_justify="left")
        for column in frame.columns:
            table.add_column(SHORT_HEADERS.get(str(column), str(column)), overflow="fold")
        for record in frame.itertuples(index=False, name=None):
            table.add_row(*(format_value(value) for value in record))
        console.print(table)


def _markdown(frame) -> str:
    from swerve.reports.html import format_value

    if frame.empty:
        return "(nothing to show)\n"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = [
        "| " + " | ".join(format_value(v).replace("|", "\\|").replace("\n", " ") for v in record) + " |"
        for record in frame.itertuples(index=False, name=None)
    ]
    return "\n".join([header, rule, *rows]) + "\n"


@app.command("report")
def report(
    run_dirs: list[Path] = typer.Argument(
        ..., help="One or more run directories (RUN_DIR as written by `swerve run` or `swerve eval`); the first is the baseline for comparisons."
    ),
    html: Optional[Path] = typer.Option(
        None, "--html", help="Also write a self-contained HTML report to this file, with trajectory pages in trajectories/ beside it."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.table, "--format", "-f", help="table (rich, default), csv, json or markdown."
    ),
    table_name: Optional[TableName] = typer.Option(
        None, "--table", "-t", help="Which table to print: all (default; csv: tasks), runs, compare, repos, difficulty, tasks, problems."
    ),
    tasks: Optional[Path] = typer.Option(
        None, "--tasks", help="Task file (JSON/JSONL/parquet) for gold patches, repository and difficulty; default: what the run stored."
    ),
    bootstrap_samples: int = typer.Option(2000, "--bootstrap-samples", min=100, help="Resamples for the paired bootstrap interval."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap (the same seed gives the same interval)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 when a run directory has problems."),
) -> None:
    """Score runs: pass rate, FAIL_TO_PASS/PASS_TO_PASS, edit distance, revert rate, steps,
    tokens; per task, repository and difficulty; runs compared with a bootstrap CI.

    A multi-attempt run (`swerve run --attempts N`) gets pass@k for k = 1..N, mean pass@1
    with a bootstrap interval, solves per task, the resolved rate of each `swerve select`
    result, and (--html) the pass@k curve; its attempt folders RUN/attempts/* are
    ordinary runs for the tables above."""
    from swerve.errors import SwerveError
    from swerve.reports.attempts import is_multi_attempt
    from swerve.reports.build import build_report

    multi = [run_dir for run_dir in run_dirs if is_multi_attempt(run_dir)]
    for run_dir in multi:
        _report_attempts(run_dir, html if len(run_dirs) == 1 else None, output_format, bootstrap_samples, seed)
    if len(multi) > 1:
        _compare_attempts(multi, output_format, bootstrap_samples, seed)
    run_dirs = [run_dir for run_dir in run_dirs if run_dir not in multi]
    if not run_dirs:
        return
    try:
        result = build_report(run_dirs, tasks=tasks, html=html, samples=bootstrap_samples, seed=seed)
    except SwerveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    tables = result.tables

    if output_format is OutputFormat.csv and table_name in (None, TableName.all):
        selected = ["tasks"]
    elif table_name in (None, TableName.all):
        selected = ["runs", "compare", "repos", "difficulty", "problems"]
        if output_format is not OutputFormat.table:
            selected.insert(4, "tasks")
    else:
        selected = [table_name.value]

    if output_format is OutputFormat.table:
        _print_rich(tables, selected)
    elif output_format is OutputFormat.csv:
        sys.stdout.write(tables[selected[0]].to_csv(index=False))
    elif output_format is OutputFormat.markdown:
        sys.stdout.write("\n".join(f"## {name}\n\n{_markdown(tables[name])}" for name in selected))
    else:
        payload = {name: json.loads(tables[name].to_json(orient="records")) for name in selected}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")

    problems = result.problem_count
    if problems and output_format is not OutputFormat.table:
        typer.echo(f"{problems} problem(s) in the run directories; see --table problems", err=True)
    if result.html_path is not None:
        typer.echo(f"HTML report: {result.html_path.resolve()}", err=True)
    if strict and problems:
        raise typer.Exit(1)


def _report_attempts(run_dir: Path, html: Optional[Path], output_format: OutputFormat, samples: int, seed: int) -> None:
    """pass@k and friends for one multi-attempt run folder."""
    from rich.console import Console

    from swerve.reports.attempts import (
        attempts_html,
        pass_at_k_table,
        read_outcomes,
        score_attempts,
        selection_rates,
        solves_table,
    )

    try:
        outcomes = read_outcomes(run_dir)
        scores = score_attempts(outcomes, samples=samples, seed=seed)
    except ValueError as exc:
        typer.echo(f"error: {run_dir}: {exc}", err=True)
        raise typer.Exit(2) from None
    selected = selection_rates(run_dir)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps({"run": str(run_dir), **scores.as_dict(), "selected": selected}, indent=2) + "\n")
    elif output_format is OutputFormat.csv:
        sys.stdout.write(pass_at_k_table(scores).to_csv(index=False))
    elif output_format is OutputFormat.markdown:
        sys.stdout.write(f"## {run_dir}: pass@k\n\n{_markdown(pass_at_k_table(scores))}\n"
                         f"## resolved attempts per task\n\n{_markdown(solves_table(scores))}")
    else:
        console = Console() if sys.stdout.isatty() else Console(width=160)
        low, high = scores.mean_pass_at_1_ci
        spread = scores.spread
        console.print(f"[bold]{run_dir}[/]: {scores.tasks} tasks x {scores.attempts} attempts; mean pass@1 "
                      f"{scores.mean_pass_at_1:.3f} [95% CI {low:.3f}, {high:.3f}]; pass@{scores.attempts} "
                      f"{scores.pass_at[scores.attempts]:.3f}; per-attempt rate {spread['min']:.3f}..{spread['max']:.3f} "
                      f"(std {spread['std']:.3f})", highlight=False)
        for name, rate in sorted(selected.items()):
            console.print(f"  selected by {name}: {rate:.3f}", highlight=False)
        _print_frame(console, "pass@k (unbiased estimator, 95% bootstrap interval)", pass_at_k_table(scores))
        _print_frame(console, "Resolved attempts per task", solves_table(scores))
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(attempts_html(run_dir.name, scores, selected))
        typer.echo(f"HTML report: {html.resolve()}", err=True)


def _compare_attempts(runs: list[Path], output_format: OutputFormat, samples: int, seed: int) -> None:
    """Mean pass@1 of each multi-attempt run against the first, paired over shared tasks."""
    import pandas as pd
    from rich.console import Console

    from swerve.reports.attempts import compare_attempts, read_outcomes

    baseline = read_outcomes(runs[0])
    rows = []
    for run in runs[1:]:
        try:
            rows.append({"run": str(run), "baseline": str(runs[0]),
                         **compare_attempts(baseline, read_outcomes(run), samples=samples, seed=seed)})
        except ValueError as exc:
            typer.echo(f"error: {run}: {exc}", err=True)
            raise typer.Exit(2) from None
    frame = pd.DataFrame(rows)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps({"compare_attempts": rows}, indent=2) + "\n")
    elif output_format is OutputFormat.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif output_format is OutputFormat.markdown:
        sys.stdout.write(f"## mean pass@1 against the first run (paired bootstrap)\n\n{_markdown(frame)}")
    else:
        console = Console() if sys.stdout.isatty() else Console(width=160)
        _print_frame(console, "Mean pass@1 against the first run (paired bootstrap 95% CI)", frame)


def _print_frame(console, title: str, frame) -> None:
    from rich.table import Table

    from swerve.reports.html import format_value

    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column))
    for record in frame.itertuples(index=False, name=None):
        table.add_row(*(format_value(value) for value in record))
    console.print(table)
