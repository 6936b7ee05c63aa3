"""`swerve images ...`: build, list and prune the tiered task images."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from swerve.cli import app
from swerve.cli.options import IMAGES_HELP, apply_images_option, instance_ids_option

images_app = typer.Typer(help="Docker images for tasks: base -> environment -> instance.", no_args_is_help=True)
app.add_typer(images_app, name="images")
console = Console(stderr=True)


@images_app.command("build")
def build(
    tasks: str = typer.Option(..., "--tasks", help="task file (JSON/JSONL/parquet) or dataset name"),
    instance_ids: Optional[list[str]] = instance_ids_option(" to build"),
    base_image: Optional[str] = typer.Option(
        None, "--base-image", help="start from this image instead of bootstrapping Debian (also $SWERVE_BASE_IMAGE)"
    ),
    rebuild: bool = typer.Option(False, "--rebuild", help="rebuild instance images even when cached"),
    images: Optional[str] = typer.Option(None, "--images", metavar="auto|local|official", help=IMAGES_HELP),
) -> None:
    """Build (or find cached) the instance image of every task. A failed task is reported with its log; the others still build."""
    from swerve.cli.build_stages import console_build_stages
    from swerve.environments.images import docker_client, ensure_instance_image
    from swerve.environments.official_images import with_images
    from swerve.errors import SwerveError
    from swerve.harness.tasks import load_tasks

    try:
        apply_images_option(images)
        selected = with_images(load_tasks(tasks, instance_ids=instance_ids or None), images)
        client = docker_client()
    except (SwerveError, ValueError) as exc:
        from swerve.cli.exits import exit_status_of_error

        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(exit_status_of_error(exc)) from None
    failed = []
    for number, task in enumerate(selected, start=1):
        console.print(f"[{number}/{len(selected)}] {task.instance_id}: building…")
        try:
            with console_build_stages(console, task.instance_id):
                ref = ensure_instance_image(task, client=client, base_image=base_image, rebuild=rebuild)
        except SwerveError as exc:
            failed.append(task.instance_id)
            console.print(f"[red]FAILED[/] {exc}")
            continue
        state = "cached" if ref.cached else "built"
        console.print(f"[green]{state}[/] {ref.tag} ({ref.id[7:19]}) {task.instance_id} at {ref.base_commit[:12]}")
    console.print(f"{len(selected) - len(failed)} of {len(selected)} images ready")
    if failed:
        console.print(f"[red]failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


@images_app.command("list")
def list_(
    tier: Optional[str] = typer.Option(
        None, "--tier", help="show only this tier: rootfs, base, env, instance or official (swerve's tier on an official image)"
    ),
) -> None:
    """List swerve's images with their tier, task and base commit."""
    from swerve.environments.images import list_images

    rows = _or_exit(list_images)
    rows = [row for row in rows if not tier or row["tier"] == tier]
    cells = [
        [row["tag"], row["tier"], row["task"], row["base_commit"][:12], str(row["size_mb"]), str(row["created"])[:19]]
        for row in rows
    ]
    out = Console()
    if not out.is_terminal:
        for line in cells:
            print("\t".join(line))
        return
    table = Table("tag", "tier", "task", "base commit", "size MB", "created")
    for line in cells:
        table.add_row(*line)
    out.print(table)


@images_app.command("prune")
def prune(
    all_: bool = typer.Option(False, "--all", help="also remove environment, base and bootstrapped images"),
    label: Optional[list[str]] = typer.Option(
        None, "--label", metavar="KEY=VALUE", help="only images carrying this label (repeat: all of them)"
    ),
) -> None:
    """Remove instance images and swerve's tiers on official images (with --all, every swerve image); images in use are kept. Official images themselves are never removed."""
    from swerve.environments.images import prune_images

    wanted = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            console.print(f"[red]error:[/] --label {item!r}: write KEY=VALUE", soft_wrap=True, highlight=False)
            raise typer.Exit(2)
        wanted[key.strip()] = value
    removed = _or_exit(lambda: prune_images(all=all_, labels=wanted))
    for tag in removed:
        console.print(f"removed {tag}")
    console.print(f"{len(removed)} image(s) removed")


def _or_exit(action):
    """Run `action`; a swerve error becomes a one-line message and exit 2 (3 for no daemon)."""
    from swerve.cli.exits import exit_status_of_error
    from swerve.errors import SwerveError

    try:
        return action()
    except SwerveError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(exit_status_of_error(exc)) from None
