"""`swerve tasks ...`: mint tasks from a repository, list a task file, validate one."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from swerve.cli import app
from swerve.harness.timeouts import MINT_SUITE_TIMEOUT_S, TEST_RUN_TIMEOUT_S
from swerve.cli.options import backend_option, hidden_instance_id_alias, instance_ids_option, merge_instance_ids

tasks_app = typer.Typer(help="Task files: mint new tasks from a repository, list them, validate them.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    """One error line; exit 2 for bad input, 3 for infrastructure."""
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=code)


def _interrupted(exc: BaseException) -> None:
    from swerve.interrupts import exit_code_of, exit_if_armed, signal_name

    console.print(f"[yellow]interrupted[/] ({signal_name(exc)})", highlight=False)
    exit_if_armed(exit_code_of(exc))
    raise typer.Exit(code=exit_code_of(exc))


@tasks_app.command("mint")
def mint(
    source: str = typer.Option(None, "--source", help="pypi:NAME==VERSION, a git URL, or a local path (required)"),
    out: Path = typer.Option(None, "--out", help="JSONL file the tasks are appended to; re-running resumes (required)"),
    max_tasks: int = typer.Option(10, "--max", help="tasks wanted from this source in OUT (rows already there count)"),
    seed: int = typer.Option(0, "--seed", help="orders the candidate bugs; same seed, same candidates"),
    workers: int = typer.Option(1, "--workers", help="warm environments testing candidates in parallel"),
    kinds: str = typer.Option("", "--kinds", help="comma-separated mutation kinds (default: all; see --list-kinds)"),
    include: list[str] = typer.Option([], "--include", help="only mutate files matching this glob (repeatable)"),
    backend: str = backend_option(),
    timeout: float = typer.Option(MINT_SUITE_TIMEOUT_S, "--timeout", min=1, help="seconds for one run of the test suite on a candidate (shorter than eval's: mutants often loop forever)"),
    max_candidates: int = typer.Option(None, "--max-candidates", help="candidates to test at most (default 40 per wanted task)"),
    no_validate: bool = typer.Option(False, "--no-validate", help="skip the evaluator check (gold resolves, no-op does not)"),
    test_requirements: list[str] = typer.Option(
        [], "--test-requirement", help="pip requirement for running the tests, replacing 'pytest' (repeatable)"
    ),
    select_tests: bool = typer.Option(
        True, "--select-tests/--no-select-tests",
        help="try each candidate on the tests that start its function first (a call map made once), confirming "
             "kept ones with the whole suite; --no-select-tests runs the whole suite for every candidate",
    ),
    pytest_server: bool = typer.Option(
        True, "--pytest-server/--no-pytest-server",
        help="run each test run in a child forked from one process per environment that imported pytest once "
             "(docker backend); --no-pytest-server starts a new interpreter for every run",
    ),
    list_kinds: bool = typer.Option(False, "--list-kinds", help="print the mutation kinds and exit"),
) -> None:
    """Mint validated SWE-bench-style tasks from SOURCE's test suite and append them to OUT."""
    from swerve.errors import SwerveError
    from swerve.harness.mint import mint_tasks
    from swerve.harness.mutations import KINDS

    if list_kinds:
        print("\n".join(KINDS))
        return
    if not source or out is None:
        _fail("--source and --out are required, e.g. --source pypi:toolz==0.12.1 --out tasks.jsonl")
    chosen = [k.strip() for k in kinds.split(",") if k.strip()] or None
    try:
        report = mint_tasks(
            source, out, max_tasks=max_tasks, seed=seed, workers=workers, kinds=chosen, backend=backend,
            timeout=timeout, include=include or None, max_candidates=max_candidates, validate=not no_validate,
            test_requirements=test_requirements or None, select_tests=select_tests, pytest_server=pytest_server,
            log=lambda message: console.print(message, highlight=False),
        )
    except SwerveError as exc:
        from swerve.errors import InfraError

        _fail(str(exc), code=3 if isinstance(exc, InfraError) else 2)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    console.print(report.summary(), highlight=False)


@tasks_app.command("list")
def list_tasks(
    file: str = typer.Argument(..., help="task file (JSON/JSONL/parquet) or dataset name"),
) -> None:
    """List the tasks in FILE: id, repo, mutation kind, lines changed, FAIL_TO_PASS count."""
    from swerve.errors import SwerveError
    from swerve.harness.tasks import load_tasks

    try:
        tasks = load_tasks(file)
    except (SwerveError, ValueError, OSError) as exc:
        _fail(str(exc))
    table = Table(title=f"{len(tasks)} task(s) in {file}")
    table.add_column("instance_id", no_wrap=True)
    for column in ("repo", "version", "kind", "lines", "F2P", "P2P"):
        table.add_column(column)
    for task in tasks:
        difficulty = task.difficulty or {}
        table.add_row(
            task.instance_id, task.repo, task.version, str(difficulty.get("mutation_kind", "")),
            str(difficulty.get("lines_changed", "")), str(len(task.FAIL_TO_PASS)), str(len(task.PASS_TO_PASS)),
        )
    Console().print(table)


@tasks_app.command("validate")
def validate(
    file: str = typer.Argument(..., help="task file (JSON/JSONL/parquet)"),
    backend: str = backend_option(),
    timeout: float = typer.Option(TEST_RUN_TIMEOUT_S, "--timeout", min=1, help="seconds for one hidden-test run (as swerve eval)"),
    instance_ids: list[str] | None = instance_ids_option(" to validate"),
    old_instance_id: list[str] | None = hidden_instance_id_alias(),
) -> None:
    """Check each task through the evaluator: the gold patch resolves it, a no-op patch does not,
    and its FAIL_TO_PASS test files are hidden from the base commit. Exits 1 if any task fails."""
    from swerve.cli.build_stages import console_build_stages
    from swerve.errors import SwerveError
    from swerve.harness.mint import hidden_from_base, validate_task
    from swerve.harness.tasks import load_tasks
    from swerve.paths import cache_dir

    try:
        tasks = load_tasks(file, instance_ids=merge_instance_ids(instance_ids, old_instance_id), require=["FAIL_TO_PASS", "patch"])
    except (SwerveError, ValueError, OSError) as exc:
        _fail(str(exc))
    bad = 0
    output_dir = cache_dir("mint") / "validate-cli"
    for number, task in enumerate(tasks, start=1):
        console.print(f"[{number}/{len(tasks)}] {task.instance_id}: validating (gold patch, no-op patch)…",
                      highlight=False)
        try:
            with console_build_stages(console, task.instance_id):
                problem = validate_task(task, backend=backend, timeout=timeout, output_dir=output_dir)
            if not problem and task.test_patch.strip():
                present = hidden_from_base(task)
                if present:
                    problem = f"FAIL_TO_PASS test file(s) present at the base commit: {', '.join(present)}"
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        if problem:
            bad += 1
            console.print(f"[red]FAIL[/] {task.instance_id}: {problem}", highlight=False)
        else:
            console.print(f"[green]ok[/]   {task.instance_id}", highlight=False)
    console.print(f"{len(tasks) - bad} of {len(tasks)} task(s) valid", highlight=False)
    if bad:
        raise typer.Exit(code=1)
