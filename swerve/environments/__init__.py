"""Where code runs: the Environment protocol and its backends (docker, local)."""

from __future__ import annotations

from swerve.environments.base import Environment, EnvironmentInfo, Limits

__all__ = ["Environment", "EnvironmentInfo", "Limits", "open_environment", "pick_backend"]


def pick_backend(backend: str = "auto") -> str:
    """'docker' when a daemon answers, else 'local'; explicit names pass through."""
    if backend != "auto":
        if backend not in ("docker", "local"):
            raise ValueError(f"unknown backend {backend!r}: use docker, local or auto")
        return backend
    from swerve.environments.docker import docker_available

    return "docker" if docker_available() else "local"


def open_environment(task, backend: str = "auto", limits: Limits | None = None, run_id: str = "adhoc"):
    """Start an environment for `task` (building or reusing its image/worktree). With
    docker, a row carrying a published `image` (SWE-bench), or any row under
    `--images official` ($SWERVE_IMAGES), runs in swerve's tier on that official image
    (pulled when missing; see `environments.official_images`).

    Returns an Environment that is also a context manager. Raises InfraError
    subclasses when the infrastructure fails; those are never the model's fault.
    """
    chosen = pick_backend(backend)
    limits = limits or Limits()
    if chosen == "docker":
        from swerve.environments.docker import DockerEnvironment

        return DockerEnvironment.for_task(task, limits=limits, run_id=run_id)
    from swerve.environments.local import LocalEnvironment

    return LocalEnvironment.for_task(task, limits=limits, run_id=run_id)
