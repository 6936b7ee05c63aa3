"""`swerve ...`: the command line. One module per command group; nothing imports cli."""

from __future__ import annotations

import typer
from typer.core import TyperGroup


class _ErrorsAsOneLine(TyperGroup):
    """Any SwerveError a command lets through becomes one `error:` line and the exit
    status of swerve.cli.exits (2 bad input, 3 infrastructure), never a traceback."""

    def invoke(self, ctx):
        from swerve.errors import SwerveError

        try:
            return super().invoke(ctx)
        except SwerveError as exc:
            from swerve.cli.exits import exit_status_of_error

            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exit_status_of_error(exc)) from None


class _Swerve(typer.Typer):
    """The `swerve` program. Run as a program (not through a test runner), a signal
    stops it within seconds whatever its threads are doing (see swerve.interrupts)."""

    def __call__(self, *args, **kwargs):
        from swerve.interrupts import arm_forced_exit

        arm_forced_exit()
        return super().__call__(*args, **kwargs)


app = _Swerve(
    name="swerve",
    cls=_ErrorsAsOneLine,
    help="SWE-bench-style evaluation, teacher trajectories and RL environments on real repositories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="log progress messages (INFO); twice (-vv) for DEBUG"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="log errors only"),
) -> None:
    """Every command: environments opened in worker threads are still closed on SIGTERM;
    SIGINT / SIGTERM exit with 130 / 143 (long commands stop their work first)."""
    from swerve.cli.logs import configure_logging, log_level
    from swerve.environments.cleanup import install_signal_handlers
    from swerve.interrupts import install_exit_handlers

    try:
        level = log_level(verbose, quiet)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(level)

    install_signal_handlers()
    install_exit_handlers()


def _register() -> None:
    """Each command group lives in its own module and registers itself on `app`."""
    from importlib import import_module

    for name in ("eval", "run", "select", "report", "images", "env", "tasks", "train", "policy"):
        import_module(f"swerve.cli.{name}")


_register()

if __name__ == "__main__":
    app()
