"""`swerve eval`: grade predictions against hidden tests, SWE-bench style."""

from __future__ import annotations

from pathlib import Path

import typer

from swerve.cli import app
from swerve.cli.options import (
    IMAGES_HELP,
    MAX_PATCH_BYTES,
    apply_images_option,
    backend_option,
    instance_ids_option,
    split_instance_ids,
)


@app.command("eval")
def eval_command(
    tasks: str = typer.Option(..., "--tasks", help="task file (.json/.jsonl/.parquet) or Hugging Face dataset name[:split]"),
    predictions: str = typer.Option(..., "--predictions", help="predictions file (.jsonl, .json list or dict), or 'gold' / 'empty'"),
    run_id: str = typer.Option(..., "--run-id", help="name of the run; results go to OUTPUT/RUN_ID and a re-run resumes it"),
    workers: int = typer.Option(1, "--workers", min=1, help="instances evaluated in parallel"),
    timeout: float = typer.Option(1800, "--timeout", min=1, help="seconds allowed for one instance's test run"),
    backend: str = backend_option(),
    instance_ids: list[str] | None = instance_ids_option(),
    reruns: int = typer.Option(0, "--reruns", min=0, help="re-run failing tests up to K times; passes on re-run are marked flaky"),
    output: Path = typer.Option(Path("runs"), "--output", help="folder that holds run folders"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a live progress bar"),
    images: str = typer.Option(None, "--images", metavar="auto|local|official", help=IMAGES_HELP),
    max_patch_bytes: int = typer.Option(
        MAX_PATCH_BYTES, "--max-patch-bytes", min=0,
        help="refuse larger patches before any environment starts, graded as the model's failure (patch_refused); "
             "0: no limit",
    ),
    ray: str = typer.Option(
        None, "--ray", metavar="ADDRESS|auto|local",
        help="grade instances as tasks on a Ray cluster, each node with its own Docker daemon: 'auto' (the cluster "
             "this machine belongs to, or RAY_ADDRESS), HOST:6379 or ray://HOST:10001, or 'local' (a private "
             "instance on this machine); --workers then bounds instances in flight cluster-wide; results, resume "
             "and summary stay on this machine; needs pip install 'swerve\\[ray]' and swerve on every node",
    ),
) -> None:
    """Grade PREDICTIONS against TASKS in fresh environments and write reports.

    Example: swerve eval --tasks tests/fixtures/toolz_tasks.jsonl --predictions gold --run-id gold-check

    On a Ray cluster: swerve eval ... --ray auto --workers 32

    Exit status: 0 every submitted instance graded; 2 bad input (the message names file,
    line and field; or rows no SWE-bench spec covers, the others graded) or the run folder
    is in use; 3 some instances hit infrastructure
    errors (re-run to retry them); 130 / 143 stopped by SIGINT / SIGTERM (re-run to resume).
    """
    from rich.console import Console
    from rich.markup import escape

    from swerve.errors import InfraError, SwerveError
    from swerve.environments.official_images import with_images
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions, load_tasks
    from swerve.interrupts import exit_code_of, exit_if_armed, signal_name

    console = Console(stderr=True)
    ids = split_instance_ids(instance_ids)
    try:
        apply_images_option(images)
        required = ("FAIL_TO_PASS", "patch") if predictions == "gold" else ("FAIL_TO_PASS",)
        task_list = with_images(load_tasks(tasks, instance_ids=ids, require=required), images)
        preds = load_predictions(predictions, tasks=task_list)
    except (SwerveError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2)
    unknown = sorted(set(preds) - {t.instance_id for t in task_list})
    submitted = sum(1 for t in task_list if t.instance_id in preds)
    if not submitted:
        where = "the selected tasks" if ids else tasks
        console.print(f"[red]error:[/] {escape(predictions)}: none of its {len(preds)} prediction(s) names a task in "
                      f"{escape(where)} (e.g. {escape(unknown[0]) if unknown else '-'}); check the instance ids and "
                      "--tasks", soft_wrap=True, highlight=False)
        raise typer.Exit(2)
    if unknown and not ids:
        console.print(f"[yellow]warning:[/] {len(unknown)} prediction(s) name no task in {escape(tasks)} "
                      f"(e.g. {escape(unknown[0])}); ignored", soft_wrap=True, highlight=False)
    if backend == "auto" and ray:
        console.print("backend: auto (picked on each Ray node)")
    elif backend == "auto":
        from swerve.environments import pick_backend

        backend = pick_backend("auto")
        console.print(f"backend: {backend}")

    counts = {"resolved": 0, "unresolved": 0, "error": 0}
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[green]{task.fields[resolved]} resolved[/] [yellow]{task.fields[unresolved]} unresolved[/] "
                       "[red]{task.fields[error]} error[/]"),
            TimeElapsedColumn(), console=console,
        )
        job = bar.add_task("eval", total=submitted, **counts)

    def on_done(instance_id, grade, error) -> None:
        if error is not None:
            counts["error"] += 1
        elif grade.resolved:
            counts["resolved"] += 1
        else:
            counts["unresolved"] += 1
        if bar is not None:
            bar.update(job, advance=1, **counts)
        else:
            verdict = "error" if error else ("resolved" if grade.resolved else grade.failure_class.value)
            console.print(f"{instance_id}: {verdict}")

    try:
        if bar is not None:
            bar.start()
        report = evaluate(task_list, preds, run_id=run_id, output_dir=output, workers=workers, timeout=timeout,
                          backend=backend, reruns=reruns, progress=on_done, ray=ray,
                          max_patch_bytes=max_patch_bytes or None, tasks_from=tasks)
    except SwerveError as exc:
        if bar is not None:
            bar.stop()
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(3 if isinstance(exc, InfraError) else 2)
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.stop()
        console.print(f"[yellow]interrupted[/] ({signal_name(exc)}): finished instances are saved, those in flight "
                      f"were abandoned; re-run the same command to resume ({output / run_id})",
                      soft_wrap=True, highlight=False)
        exit_if_armed(exit_code_of(exc))
        raise typer.Exit(exit_code_of(exc))
    finally:
        if bar is not None:
            bar.stop()
    summary = report.summary
    console.print(
        f"resolved {summary['resolved_instances']}/{summary['total_instances']} "
        f"(unresolved {summary['unresolved_instances']}, empty {summary['empty_patch_instances']}, "
        f"errors {summary['error_instances']}, reused {len(report.skipped)}) -> {report.run_dir / 'summary.json'}"
    )
    for instance_id, message in sorted(report.errors.items()):
        console.print(f"[red]error[/] {instance_id}: {escape(message)}", soft_wrap=True, highlight=False)
    bad_rows = [i for i, message in report.errors.items() if message.startswith("bad task:")]
    infra = len(report.errors) - len(bad_rows)
    if bad_rows:
        console.print(f"{len(bad_rows)} instance(s) not graded (bad task rows); fix them as each line says",
                      highlight=False)
    if infra:
        console.print(f"{infra} instance(s) not graded (infrastructure); re-run the same command to "
                      "retry them", highlight=False)
        raise typer.Exit(3)
    if bad_rows:
        raise typer.Exit(2)
