"""The local backend on a real project (toolz from its PyPI sdist), no Docker needed."""

from __future__ import annotations

import os
import threading
import time

import pytest

from swerve.environments.base import Limits
from swerve.environments.local import LocalEnvironment, isolation_mode


@pytest.fixture(scope="module")
def local_env(toolz_task):
    env = LocalEnvironment.for_task(toolz_task, limits=Limits(exec_timeout_s=120), run_id="pytest-local")
    yield env
    env.close()


def test_runs_the_projects_tests_from_the_shared_wheelhouse(local_env):
    result = local_env.exec("python -m pytest -q -p no:cacheprovider toolz/tests/test_itertoolz.py", timeout=300)
    assert result.exit_code == 0, result.output[-2000:]
    where = local_env.exec("python -c 'import toolz; print(toolz.__file__)'").output.strip()
    assert where.startswith(local_env.info.workdir)


def test_persistent_shell_timeout_and_reset(local_env):
    local_env.exec("cd toolz && export PROBE=7")
    assert local_env.exec('echo "$PROBE"; pwd').output.split() == ["7", f"{local_env.info.workdir}/toolz"]
    slow = local_env.exec("sleep 1000", timeout=2)
    assert slow.timed_out and not slow.shell_restarted
    assert local_env.exec("echo ok").output.strip() == "ok"
    local_env.write_file("toolz/utils.py", "broken = True\n")
    local_env.write_file("new_untracked.py", "x = 1\n")
    assert "new_untracked.py" in local_env.diff()
    local_env.reset()
    assert local_env.diff() == ""
    assert local_env.exec('echo "[$PROBE]"; pwd').output.split() == ["[]", local_env.info.workdir]


@pytest.mark.skipif(isolation_mode() != "bwrap" and os.environ.get("CI") != "true", reason="needs bubblewrap")
def test_bubblewrap_isolation_has_no_network_and_a_read_only_host(local_env):
    assert local_env.info.extra["isolation"] == "bwrap"
    probe = local_env.exec("python -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=3)'")
    assert probe.exit_code != 0
    assert local_env.exec("touch /usr/swerve-probe").exit_code != 0


def test_close_removes_the_clone(toolz_task):
    env = LocalEnvironment.for_task(toolz_task, run_id="pytest-local-close")
    root = env.root
    assert root.exists()
    env.close()
    env.close()
    assert not root.exists()


def test_close_ends_a_running_command_instead_of_waiting_for_it(toolz_task):
    env = LocalEnvironment.for_task(toolz_task, run_id="pytest-local-close-running")
    started = env.root / "started"
    results = []
    worker = threading.Thread(target=lambda: results.append(env.exec(f"touch {started}; sleep 30; echo finished")))
    worker.start()
    try:
        for _ in range(200):
            if started.exists():
                break
            time.sleep(0.1)
        assert started.exists(), "the command never started"
        env.close()
        worker.join(timeout=20)  # well under the 30 s the command would take
        assert not worker.is_alive(), "exec() still running after close()"
    finally:
        env.close()
        worker.join()
    [result] = results
    assert "finished" not in result.output and result.exit_code != 0
