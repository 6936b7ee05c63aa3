"""What grading one instance can end in, as types rather than string prefixes.

An instance is either graded (a `Grade`: everything the patch did is the model's
result, refusals included: `FailureClass.PATCH_REFUSED`), or not graded with an
`EvalError` whose `kind` says why: the infrastructure failed (retried, never the
model's result), the task row cannot be evaluated as given, or the harness itself
failed. `EvalError.text` is the one-line form stored in `error.json` and the run
summary ("infra: ...", "bad task: ...", "harness error: ..."), kept for the run
folder format; code decides on `kind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from swerve.errors import InfraError, TaskFormatError
from swerve.schema import Grade


class EvaluationStopped(Exception):
    """The run was interrupted; the instance is left for a resumed run."""


class ErrorKind(str, Enum):
    """Why an instance was not graded."""

    INFRA = "infra"
    """The environment, image or daemon failed: retried; re-running the run retries it."""
    BAD_TASK = "bad_task"
    """The task row cannot be evaluated as given (e.g. no SWE-bench spec): fix the row."""
    HARNESS = "harness"
    """swerve itself failed (a bug): never the model's result."""


_PREFIXES = {ErrorKind.INFRA: "infra", ErrorKind.BAD_TASK: "bad task", ErrorKind.HARNESS: "harness error"}


@dataclass(frozen=True)
class EvalError:
    """An instance that was not graded: its kind, the message, and the attempts made."""

    kind: ErrorKind
    message: str
    attempts: int = 1

    @property
    def text(self) -> str:
        """The stored one-line form: "<kind prefix>: <message>"."""
        return f"{_PREFIXES[self.kind]}: {self.message}"

    @property
    def retried(self) -> bool:
        """Whether this kind is retried within a run (infrastructure only)."""
        return self.kind is ErrorKind.INFRA

    @classmethod
    def from_exception(cls, exc: BaseException, attempts: int = 1) -> EvalError:
        """Classify an exception raised while grading."""
        if isinstance(exc, InfraError):
            return cls(ErrorKind.INFRA, str(exc), attempts)
        if isinstance(exc, TaskFormatError):
            return cls(ErrorKind.BAD_TASK, str(exc), attempts)
        return cls(ErrorKind.HARNESS, f"{type(exc).__name__}: {exc}", attempts)

    @classmethod
    def from_text(cls, text: str, attempts: int = 1) -> EvalError:
        """Read the stored form back (older run folders hold only the text)."""
        for kind, prefix in _PREFIXES.items():
            if text.startswith(prefix + ": "):
                return cls(kind, text[len(prefix) + 2:], attempts)
        return cls(ErrorKind.INFRA, text, attempts)


@dataclass(frozen=True)
class Graded:
    """The instance was graded: the model's result."""

    grade: Grade


@dataclass(frozen=True)
class NotGraded:
    """The instance was not graded: `error` says why."""

    error: EvalError


@dataclass(frozen=True)
class Abandoned:
    """The run was stopped while the instance was in flight: nothing is written for it,
    and a resumed run grades it."""


Outcome = Graded | NotGraded | Abandoned
