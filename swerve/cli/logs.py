"""`swerve --verbose / --quiet`: the standard `logging` module, configured once per program run."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def log_level(verbose: int, quiet: bool) -> int:
    """The root level for `--verbose` (given once: INFO, twice or more: DEBUG) and `--quiet`
    (errors only); WARNING when neither is given. ValueError when both are."""
    if verbose and quiet:
        raise ValueError("--verbose and --quiet: give one or the other")
    if quiet:
        return logging.ERROR
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return logging.WARNING


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record arrives (not the one at start-up), so a
    program that swaps stderr (a test runner capturing output) never logs to a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: int) -> None:
    """Send swerve's log records (and libraries' warnings) to stderr at `level`; replaces a
    handler an earlier call installed, so calling it again (tests) changes the level."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_swerve_cli", False):
            root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(level)
    handler._swerve_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
