"""A Docker environment on an already built instance image, for the environment tests."""

from __future__ import annotations

from swerve.environments.base import Limits
from swerve.environments.docker import DockerEnvironment


def docker_env_on(image, name: str, **limits) -> DockerEnvironment:
    """A container of `image` (an ImageRef) named after the test (`name`), with 120 s per
    command unless `limits` say otherwise."""
    return DockerEnvironment(
        image.tag, instance_id=f"toolz-{name}", base_commit=image.base_commit, workdir=image.workdir,
        limits=Limits(**{"exec_timeout_s": 120, **limits}), run_id=f"pytest-{name}",
    )
