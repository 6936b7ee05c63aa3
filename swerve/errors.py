"""Errors users can hit. Each says what was wrong and what to do about it."""

from __future__ import annotations


class SwerveError(Exception):
    """Base class: a problem swerve can explain in one line."""


class TaskFormatError(SwerveError, ValueError):
    """A task or prediction file has a bad row; the message names file, row and field."""


class InfraError(SwerveError):
    """The infrastructure failed (daemon, image build, container start).

    Never the model's fault: callers retry these and never record them as a result.
    """


class DockerUnavailable(InfraError):
    """No Docker daemon answers."""


class ImageBuildError(InfraError):
    """An image could not be built; `log` holds the build output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class SourceError(InfraError):
    """A repository source (pypi:NAME==VERSION, git URL, path) could not be fetched."""


class RunFolderBusy(SwerveError):
    """Another live process holds the run folder's lock; the message names the folder and its pid."""
