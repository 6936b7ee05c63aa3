"""Shared fixtures. A missing Docker daemon skips docker tests on a laptop and is
an error in CI (CI=true), so CI can never go green without exercising Docker."""

from __future__ import annotations

import os

import pytest


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the daemon is missing or refuses
        message = f"no Docker daemon answers ({exc}); start one (make test does, as root)"
        if _ci():
            pytest.fail(message)
        pytest.skip(message)
    return client
