from __future__ import annotations

import pytest

from swerve.schema import Task

TOOLZ = Task(instance_id="toolz-env-smoke", repo="pytoolz/toolz", repo_source="pypi:toolz==0.12.1")


@pytest.fixture(scope="session")
def toolz_task() -> Task:
    return TOOLZ


@pytest.fixture(scope="session")
def toolz_image(docker_client, toolz_task):
    from swerve.environments.images import ensure_instance_image

    return ensure_instance_image(toolz_task, client=docker_client)
