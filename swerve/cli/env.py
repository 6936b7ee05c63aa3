"""`swerve env ...`: open a task's environment by hand, reap leftover containers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import typer
from rich.console import Console

from swerve.cli import app
from swerve.cli.options import backend_option

env_app = typer.Typer(help="Task environments: a shell inside one, and cleanup of leftovers.", no_args_is_help=True)
app.add_typer(env_app, name="env")
console = Console(stderr=True)


def _find_task(tasks_file: str, task_id: str):
    from swerve.harness.tasks import load_tasks

    matches = [t for t in load_tasks(tasks_file) if t.instance_id == task_id]
    if not matches:
        raise typer.BadParameter(f"no task {task_id!r} in {tasks_file}; check the id with `swerve tasks list`")
    return matches[0]


@env_app.command("shell")
def shell(
    task_id: str = typer.Argument(..., help="instance_id of the task to open"),
    tasks: str = typer.Option(..., "--tasks", help="task file (JSON/JSONL/parquet) or dataset name holding the task"),
    backend: str = backend_option(),
    keep: bool = typer.Option(False, help="leave the container running after the shell exits (docker only)"),
) -> None:
    """Drop into TASK_ID's environment at its base commit, for debugging a task by hand."""
    from swerve.environments import open_environment, pick_backend

    task = _find_task(tasks, task_id)
    chosen = pick_backend(backend)
    console.print(f"[bold]{task_id}[/]: opening a {chosen} environment (first use builds images; this can take minutes)")
    env = open_environment(task, backend=chosen, run_id="env-shell")
    try:
        console.print(f"workdir {env.info.workdir} at {env.info.base_commit[:12]}; type `exit` to leave")
        container = env.info.extra.get("container")
        if container and shutil.which("docker"):
            subprocess.call(["docker", "exec", "-it", "-u", "swerve", "-w", env.info.workdir, container, "bash"])
        else:
            _line_shell(env)
    finally:
        if keep and env.info.backend == "docker":
            from swerve.environments import cleanup

            cleanup.unregister(env)
            console.print(f"container {env.info.extra.get('container')} kept; remove it with `swerve env prune --all`")
        else:
            env.close()


def _line_shell(env) -> None:
    """A line-at-a-time shell over env.exec, for backends without a terminal to attach."""
    while True:
        try:
            line = input(f"({Path(env.info.workdir).name})$ ")
        except EOFError:
            break
        if line.strip() in ("exit", "logout"):
            break
        result = env.exec(line)
        print(result.output, end="" if result.output.endswith("\n") or not result.output else "\n")


@env_app.command("prune")
def prune(
    run_id: str = typer.Option(None, "--run-id", help="only containers of this run"),
    all_: bool = typer.Option(False, "--all", help="also containers whose owner is alive or on another host / PID namespace"),
) -> None:
    """Remove swerve containers left behind (by label); by default only orphans: started on
    this host and PID namespace by a process that is gone. Also removes the shell FIFO
    folders (`<tmp>/swerve-io-<pid>-*`) of processes that are gone."""
    from swerve.environments.docker import prune_containers
    from swerve.environments.docker_transports import prune_fifo_folders

    removed = prune_containers(run_id=run_id, orphans_only=not all_)
    console.print(f"removed {len(removed)} container(s)" + (": " + ", ".join(removed) if removed else ""))
    folders = prune_fifo_folders()
    if folders:
        console.print(f"removed {len(folders)} FIFO folder(s) of processes that are gone")
