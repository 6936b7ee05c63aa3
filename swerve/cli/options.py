"""Parsing shared by the command modules."""

from __future__ import annotations

from collections.abc import Iterable


def split_instance_ids(values: str | Iterable[str] | None) -> list[str] | None:
    """`--instance-ids` as a list: ids separated by commas or spaces, in one value or in
    repeated ones; None (every task) when nothing is named."""
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    ids = [part for value in values for part in value.replace(",", " ").split()]
    return ids or None


INSTANCE_IDS_HELP = "only these instances{what}: repeat the option or separate ids with commas (default: every task)"


def instance_ids_option(what: str = ""):
    """The `--instance-ids` option of every command that selects instances: repeatable and
    comma-separated (`--instance-ids a,b --instance-ids c`), parsed into a list (None: every task).
    `what` ends the help text (e.g. " to build")."""
    import typer

    return typer.Option(
        None, "--instance-ids", metavar="IDS", help=INSTANCE_IDS_HELP.format(what=what),
        callback=lambda values: split_instance_ids(values),
    )


def hidden_instance_id_alias():
    """`--instance-id` (the old spelling of `tasks validate`), kept working but not shown in --help;
    the command merges it with --instance-ids through merge_instance_ids."""
    import typer

    return typer.Option(None, "--instance-id", hidden=True, callback=lambda values: split_instance_ids(values))


def merge_instance_ids(*selections: list[str] | None) -> list[str] | None:
    """One selection from --instance-ids and its hidden aliases (None when none names an id)."""
    ids = [instance_id for selection in selections if selection for instance_id in selection]
    return ids or None


IMAGES_HELP = (
    "where instance images come from: local (swerve builds them offline, with the row's Python), official "
    "(SWE-bench's prebuilt sweb.eval.* images, used when loaded, else pulled; namespace and tag from "
    "$SWERVE_OFFICIAL_NAMESPACE / $SWERVE_OFFICIAL_TAG), or auto (official for rows carrying `image`); "
    "also $SWERVE_IMAGES"
)


def apply_images_option(value: str | None) -> None:
    """Check `--images` and hand it to the image builders (and worker processes) through
    $SWERVE_IMAGES; ValueError naming the option on a bad value."""
    if value is None:
        return
    from swerve.environments.official_images import IMAGE_MODES, IMAGES_ENV

    chosen = value.strip().lower()
    if chosen not in IMAGE_MODES:
        raise ValueError(f"--images {value!r}: use one of {', '.join(IMAGE_MODES)}")
    import os

    os.environ[IMAGES_ENV] = chosen

MAX_PATCH_BYTES = 5_000_000
"""--max-patch-bytes' default; the same as swerve.harness.evaluate.MAX_PATCH_BYTES (not
imported from there so that `swerve --help` stays fast)."""


BACKEND_HELP = (
    "docker, local, auto (docker when a daemon answers), scratch (a temp clone, no isolation: tests only), "
    "or module:Class (docs/environments.md)"
)
"""The registry's names (swerve.environments.registry.known_backends; a test keeps them in step),
written out so that `swerve --help` does not import the environments."""


def backend_option(purpose: str = ""):
    """The `--backend` option of every command: checked in one place (swerve.environments.registry)
    while the command line is parsed, so an unknown backend is one error line and exit 2."""
    import typer

    return typer.Option("auto", "--backend", help=f"{BACKEND_HELP}{purpose}", callback=checked_backend)


def checked_backend(value: str) -> str:
    """`value` when it names a backend; otherwise one error line on stderr and exit 2."""
    import typer

    from swerve.environments.registry import UnknownBackend, check_backend

    try:
        return check_backend(value)
    except UnknownBackend as exc:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[red]error:[/] --backend: {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
