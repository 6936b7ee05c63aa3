"""Where code runs: the Environment protocol and its backends (docker, local, or any
`module:Class` through swerve.environments.registry)."""

from __future__ import annotations

from swerve.environments.base import Environment, EnvironmentInfo, Limits

__all__ = ["Environment", "EnvironmentInfo", "Limits", "open_environment", "pick_backend"]


def pick_backend(backend: str = "auto") -> str:
    """'docker' when a daemon answers, else 'local'; known names and `module:Class` paths
    pass through; an unknown one raises registry.UnknownBackend listing the known names."""
    from swerve.environments.registry import resolve_backend

    return resolve_backend(backend)


def open_environment(task, backend: str = "auto", limits: Limits | None = None, run_id: str = "adhoc"):
    """Start an environment for `task` (building or reusing its image/worktree). With
    docker, a row carrying a published `image` (SWE-bench), or any row under
    `--images official` ($SWERVE_IMAGES), runs in swerve's tier on that official image
    (pulled when missing; see `environments.official_images`).

    Returns an Environment that is also a context manager. Raises InfraError
    subclasses when the infrastructure fails; those are never the model's fault.
    """
    from swerve.environments.registry import backend_class

    chosen = pick_backend(backend)
    return backend_class(chosen).for_task(task, limits=limits or Limits(), run_id=run_id)
