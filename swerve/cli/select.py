"""`swerve select RUN --strategy S`: one patch per task from a multi-attempt run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from swerve.cli import app
from swerve.cli.options import backend_option


@app.command("select")
def select(
    run_dir: Path = typer.Argument(..., help="a multi-attempt run folder (swerve run --attempts N --out RUN)"),
    tasks: str = typer.Option(..., "--tasks", help="the run's task file (JSON/JSONL/parquet) or dataset name"),
    strategy: str = typer.Option(
        "tests,consensus", "--strategy",
        help="tests (visible test suite and every attempt's reproduction tests per candidate), "
             "consensus (largest group of equal source diffs), "
             "judge:SPEC (a policy rates each candidate 0-10), or a comma-separated combination where "
             "later strategies break ties",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="predictions file to write (default RUN/selections/STRATEGY.jsonl)"),
    backend: str = backend_option(" (for the tests strategy)"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="model_name_or_path of the rows"),
    workers: int = typer.Option(1, "--workers", min=1, help="tasks scored at once, each in its own environment"),
) -> None:
    """Pick one patch per task among a run's attempts and write a predictions file that
    `swerve eval --predictions FILE` grades. Selection never sees the gold patch, the
    hidden tests or the grades (docs/attempts.md).

    Example: swerve select runs/many --tasks examples/smoke.jsonl --strategy tests,consensus

    Exit status: 0 done; 2 bad input.
    """
    from rich.console import Console

    from swerve.agents.selection import select_run
    from swerve.cli.run import _guarded
    from swerve.harness.tasks import load_tasks

    console = Console(stderr=True)
    task_list = _guarded(lambda: load_tasks(tasks))
    summary = _guarded(lambda: select_run(
        run_dir, task_list, strategy, out_path=out, backend=backend, model_name=model_name, workers=workers,
        progress=lambda line: console.print(line, highlight=False, markup=False),
    ))
    console.print(f"selected {summary['tasks']} patches in {summary['seconds']:.1f} s -> {summary['predictions']}",
                  highlight=False)
