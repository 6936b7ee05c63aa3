"""The exit statuses every `swerve` command uses, and the one place that maps an
error to its status.

| status | meaning |
|---|---|
| 0 | done |
| 1 | done, but some items failed (an invalid task, an image that did not build, `report --strict` problems) |
| 2 | bad input: a file, option or run folder the user must fix (one `error:` line says which and how) |
| 3 | infrastructure: the daemon, an image build or a source fetch failed; re-run to retry |
| 130 / 143 | stopped by SIGINT / SIGTERM; finished work is kept and a re-run resumes |
"""

from __future__ import annotations

OK = 0
SOME_FAILED = 1
BAD_INPUT = 2
INFRASTRUCTURE = 3


def exit_status_of_error(exc: BaseException) -> int:
    """3 for an infrastructure error, 2 for anything else the user can fix."""
    from swerve.errors import InfraError

    return INFRASTRUCTURE if isinstance(exc, InfraError) else BAD_INPUT
