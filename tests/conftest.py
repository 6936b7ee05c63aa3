"""Shared fixtures. A missing Docker daemon skips docker tests on a laptop and is
an error in CI (CI=true), so CI can never go green without exercising Docker; the
same holds for every other skip, at run time or at collection time."""

from __future__ import annotations

import os

import pytest

# Test models are tiny: one thread each is faster than two threads contending.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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
    # Containers of an earlier run that was killed (its owner process is gone) would read as
    # this run's leaks in the tests that count a run's containers: reap them first, as
    # `swerve env prune` does. A live process's containers are never touched.
    from swerve.environments.docker import prune_containers

    removed = prune_containers(client)
    if removed:
        print(f"\nremoved {len(removed)} orphaned swerve container(s) of an earlier run: {', '.join(removed)}")
    return client


def pytest_sessionfinish(session, exitstatus):
    """No container may outlive the test run: any left by this process fails it."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        leftovers = client.containers.list(all=True, filters={"label": f"swerve.owner_pid={os.getpid()}"})
    except Exception:
        return
    if leftovers:
        for container in leftovers:
            container.remove(force=True)
        names = ", ".join(c.name for c in leftovers)
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"ERROR: containers outlived the test run (removed now): {names}", red=True
        )
        session.exitstatus = 1


def _fail_skip_in_ci(report) -> None:
    """In CI a skip means something the suite needs was not installed or started:
    it fails the run instead of hiding the gap."""
    if _ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where skips are failures (install or start what it needs): {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test skipped while it runs (a fixture or the test calls pytest.skip)."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped while it is collected (module-level pytest.importorskip
    or pytest.skip(allow_module_level=True))."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())
