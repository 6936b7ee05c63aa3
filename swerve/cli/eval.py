"""`swerve eval`: grade predictions against hidden tests, SWE-bench style."""

from __future__ import annotations

from pathlib import Path

import typer

from swerve.cli import app
from swerve.harness.timeouts import TEST_RUN_TIMEOUT_S
from swerve.cli.options import (
    IMAGES_HELP,
    MAX_PATCH_BYTES,
    apply_images_option,
    backend_option,
    instance_ids_option,
    split_instance_ids,
)


DEFAULT_OUTPUT = Path("runs")
"""Where `--run-id` runs go without `--output` (SWE-bench's layout: runs/RUN_ID)."""


@app.command("eval")
def eval_command(
    tasks: str = typer.Option(..., "--tasks", help="task file (.json/.jsonl/.parquet) or Hugging Face dataset name[:split]"),
    predictions: str = typer.Option(..., "--predictions", help="predictions file (.jsonl, .json list or dict), or 'gold' / 'empty'"),
    out: Path = typer.Option(None, "--out", help="run folder, as for swerve run (its name is the run id); a re-run resumes it"),
    run_id: str = typer.Option(None, "--run-id", help="name of the run, SWE-bench style: results go to runs/RUN_ID "
                                                      "(or OUTPUT/RUN_ID); give this or --out"),
    workers: int = typer.Option(1, "--workers", min=1, help="hidden-test runs at once (each instance in its own container; below the core count one more instance is prepared meanwhile)"),
    timeout: float = typer.Option(TEST_RUN_TIMEOUT_S, "--timeout", min=1, help="seconds allowed for one instance's test run"),
    backend: str = backend_option(),
    instance_ids: list[str] | None = instance_ids_option(),
    reruns: int = typer.Option(0, "--reruns", min=0, help="re-run failing tests up to K times; passes on re-run are marked flaky"),
    output: Path = typer.Option(DEFAULT_OUTPUT, "--output", help="folder that holds run folders, with --run-id"),
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

    Example: swerve eval --tasks tests/fixtures/toolz_tasks.jsonl --predictions gold --out runs/gold-check
    (or, SWE-bench style, --run-id gold-check: the same folder)

    On a Ray cluster: swerve eval ... --ray auto --workers 32

    Exit status: 0 every submitted instance graded; 2 bad input (the message names file,
    line and field; or rows no SWE-bench spec covers, the others graded) or the run folder
    is in use; 3 some instances hit infrastructure
    errors (re-run to retry them); 130 / 143 stopped by SIGINT / SIGTERM (re-run to resume).
    """
    from rich.console import Console

    console = Console(stderr=True)
    output, run_id = _run_folder(console, out, output, run_id)
    ids = split_instance_ids(instance_ids)
    task_list, preds = _load_inputs(console, tasks, predictions, ids, images)
    submitted = _check_predictions(console, task_list, preds, tasks, predictions, ids)
    backend = _announce_backend(console, backend, ray)
    with _EvalProgress(console, submitted, shown=progress) as bar:
        report = _run(console, bar, task_list, preds, run_id=run_id, output=output, workers=workers, timeout=timeout,
                      backend=backend, reruns=reruns, ray=ray, max_patch_bytes=max_patch_bytes or None, tasks_from=tasks)
    raise typer.Exit(_report_and_exit_code(console, report))


def _print_error(console, message: str) -> None:
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def _run_folder(console, out: Path | None, output: Path, run_id: str | None) -> tuple[Path, str]:
    """(folder holding the run, run id) from --out, or from --output and --run-id; exit 2 when
    neither names the run or they disagree."""
    if out is None and not run_id:
        _print_error(console, "name the run: --out RUN_FOLDER (e.g. --out runs/gold-check) or --run-id NAME")
        raise typer.Exit(2)
    if out is None:
        return output, run_id
    if out.name in ("", ".", ".."):  # `--out .`: the folder's own name, not an empty run id
        out = out.resolve()
    if run_id and run_id != out.name:
        _print_error(console, f"--run-id {run_id} and --out {out} name different runs (the folder's name is the "
                              f"run id); give one of them")
        raise typer.Exit(2)
    if output != DEFAULT_OUTPUT and output.resolve() != out.parent.resolve():
        _print_error(console, f"--output {output} and --out {out} name different folders; --output goes with "
                              f"--run-id: give --out the whole run folder (e.g. --out {output / out.name})")
        raise typer.Exit(2)
    return out.parent, out.name


def _load_inputs(console, tasks: str, predictions: str, ids: list[str] | None, images: str | None):
    """The selected tasks and the predictions; exit 2 with one line on bad input."""
    from swerve.environments.official_images import with_images
    from swerve.errors import SwerveError
    from swerve.harness.tasks import load_predictions, load_tasks

    try:
        apply_images_option(images)
        required = ("FAIL_TO_PASS", "patch") if predictions == "gold" else ("FAIL_TO_PASS",)
        task_list = with_images(load_tasks(tasks, instance_ids=ids, require=required), images)
        return task_list, load_predictions(predictions, tasks=task_list)
    except (SwerveError, ValueError, OSError) as exc:
        _print_error(console, str(exc))
        raise typer.Exit(2) from None


def _check_predictions(console, task_list, preds, tasks: str, predictions: str, ids: list[str] | None) -> int:
    """How many selected tasks have a prediction; exit 2 when none has, warn about
    predictions that name no task."""
    from rich.markup import escape

    unknown = sorted(set(preds) - {t.instance_id for t in task_list})
    submitted = sum(1 for t in task_list if t.instance_id in preds)
    if not submitted:
        where = "the selected tasks" if ids else tasks
        _print_error(console, f"{predictions}: none of its {len(preds)} prediction(s) names a task in {where} "
                              f"(e.g. {unknown[0] if unknown else '-'}); check the instance ids and --tasks")
        raise typer.Exit(2)
    if unknown and not ids:
        console.print(f"[yellow]warning:[/] {len(unknown)} prediction(s) name no task in {escape(tasks)} "
                      f"(e.g. {escape(unknown[0])}); ignored", soft_wrap=True, highlight=False)
    return submitted


def _announce_backend(console, backend: str, ray: str | None) -> str:
    """The backend to use ('auto' resolved here, or on each Ray node)."""
    if backend == "auto" and ray:
        console.print("backend: auto (picked on each Ray node)")
    elif backend == "auto":
        from swerve.environments import pick_backend

        backend = pick_backend("auto")
        console.print(f"backend: {backend}")
    return backend


class _EvalProgress:
    """A live bar counting resolved / unresolved / error instances, or one line per
    instance with --no-progress; `on_done` is evaluate()'s progress callback."""

    def __init__(self, console, total: int, *, shown: bool) -> None:
        self.console = console
        self.counts = {"resolved": 0, "unresolved": 0, "error": 0}
        self.bar = None
        if shown:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[green]{task.fields[resolved]} resolved[/] [yellow]{task.fields[unresolved]} unresolved[/] "
                           "[red]{task.fields[error]} error[/]"),
                TimeElapsedColumn(), console=console,
            )
            self.job = self.bar.add_task("eval", total=total, **self.counts)

    def __enter__(self) -> _EvalProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def on_done(self, instance_id, grade, error) -> None:
        verdict = "error" if error is not None else ("resolved" if grade.resolved else "unresolved")
        self.counts[verdict] += 1
        if self.bar is not None:
            self.bar.update(self.job, advance=1, **self.counts)
        else:
            shown = verdict if verdict != "unresolved" else grade.failure_class.value
            self.console.print(f"{instance_id}: {shown}")


def _run(console, bar: _EvalProgress, task_list, preds, *, run_id: str, output: Path, **options):
    """evaluate(); exit 3 (infrastructure) or 2 on a run-level error, 130 / 143 when stopped."""
    from swerve.errors import InfraError, SwerveError
    from swerve.harness.evaluate import evaluate
    from swerve.interrupts import exit_code_of, exit_if_armed, signal_name

    try:
        return evaluate(task_list, preds, run_id=run_id, output_dir=output, progress=bar.on_done, **options)
    except SwerveError as exc:
        bar.stop()
        _print_error(console, str(exc))
        raise typer.Exit(3 if isinstance(exc, InfraError) else 2) from None
    except KeyboardInterrupt as exc:
        bar.stop()
        console.print(f"[yellow]interrupted[/] ({signal_name(exc)}): finished instances are saved, those in flight "
                      f"were abandoned; re-run the same command to resume ({output / run_id})",
                      soft_wrap=True, highlight=False)
        exit_if_armed(exit_code_of(exc))
        raise typer.Exit(exit_code_of(exc)) from None


def _report_and_exit_code(console, report) -> int:
    """Print the run's result and the instances not graded; the exit code: 3 when any
    hit infrastructure (or harness) errors, 2 when only bad task rows, else 0."""
    from rich.markup import escape

    from swerve.harness.outcomes import ErrorKind

    summary = report.summary
    console.print(
        f"resolved {summary['resolved_instances']}/{summary['total_instances']} "
        f"(unresolved {summary['unresolved_instances']}, empty {summary['empty_patch_instances']}, "
        f"errors {summary['error_instances']}, reused {len(report.skipped)}) -> {report.run_dir / 'summary.json'}"
    )
    for instance_id, error in sorted(report.failures.items()):
        console.print(f"[red]error[/] {instance_id}: {escape(error.text)}", soft_wrap=True, highlight=False)
    bad_rows = report.failed(ErrorKind.BAD_TASK)
    infra = len(report.failures) - len(bad_rows)
    if bad_rows:
        console.print(f"{len(bad_rows)} instance(s) not graded (bad task rows); fix them as each line says",
                      highlight=False)
    if infra:
        console.print(f"{infra} instance(s) not graded (infrastructure); re-run the same command to "
                      "retry them", highlight=False)
        return 3
    return 2 if bad_rows else 0
