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


@pytest.fixture
def descriptor_churn():
    """`start()` begins a thread that keeps opening and closing pipes until the test ends,
    so that a descriptor closed meanwhile gets its number handed to another file at once
    (what a busy process does: other environments open pipes and sockets all the time)."""
    import os
    import threading

    stop = threading.Event()
    threads: list[threading.Thread] = []

    def churn() -> None:
        held: list[tuple[int, int]] = []
        while not stop.is_set():
            held.append(os.pipe())
            if len(held) > 32:
                for fd in held.pop(0):
                    os.close(fd)
        for pair in held:
            for fd in pair:
                os.close(fd)

    def start() -> None:
        thread = threading.Thread(target=churn, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join()
