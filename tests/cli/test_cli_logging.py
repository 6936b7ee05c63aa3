"""`swerve --verbose / --quiet`: the standard logging module, configured once by the top-level command."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from swerve.cli import app
from swerve.cli.logs import configure_logging, log_level


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _cli_handlers():
    return [h for h in logging.getLogger().handlers if getattr(h, "_swerve_cli", False)]


@pytest.mark.parametrize(
    ("args", "level"),
    [([], logging.WARNING), (["-v"], logging.INFO), (["--verbose"], logging.INFO), (["-vv"], logging.DEBUG),
     (["-q"], logging.ERROR), (["--quiet"], logging.ERROR)],
)
def test_top_level_flags_set_the_root_level(args, level):
    # the group's callback runs before the subcommand parses its own --help
    result = CliRunner().invoke(app, [*args, "report", "--help"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == level
    assert len(_cli_handlers()) == 1


def test_verbose_and_quiet_together_is_one_error_line():
    result = CliRunner().invoke(app, ["-v", "-q", "report", "--help"])
    assert result.exit_code == 2
    assert "--verbose and --quiet" in result.output
    assert "Traceback" not in result.output


def test_configuring_twice_keeps_one_handler():
    configure_logging(logging.INFO)
    configure_logging(logging.DEBUG)
    assert len(_cli_handlers()) == 1
    assert logging.getLogger().level == logging.DEBUG


def test_info_records_reach_stderr_only_when_verbose(capsys):
    configure_logging(log_level(verbose=1, quiet=False))
    logging.getLogger("swerve.environments.cleanup").info("removed 3 leftover containers")
    assert "INFO swerve.environments.cleanup: removed 3 leftover containers" in capsys.readouterr().err
    configure_logging(log_level(verbose=0, quiet=False))
    logging.getLogger("swerve.environments.cleanup").info("removed 4 leftover containers")
    assert "removed 4" not in capsys.readouterr().err


def test_records_after_the_command_go_to_the_current_stderr(capsys):
    # CliRunner swaps stderr for the command and closes it after: later records must not hit it
    CliRunner().invoke(app, ["-v", "report", "--help"])
    logging.getLogger("swerve.test").warning("after the command")
    assert "WARNING swerve.test: after the command" in capsys.readouterr().err
