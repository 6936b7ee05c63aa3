"""The docker backend's shell on FIFOs (swerve.environments.docker_transports): what the
agent can see of them, what the host keeps, restarts, and the fall back to the exec's
socket when the FIFOs do not connect (a daemon that sees another folder)."""

from __future__ import annotations

import os
import tempfile

import pytest

from swerve.environments import docker as docker_backend
from swerve.environments.base import Limits
from swerve.environments.docker import DockerEnvironment, _shell_transport
from swerve.environments.docker_transports import IO_DIR, ExecSocketTransport, FifoFolder, FifoTransport
from swerve.errors import InfraError


def _env(image, **limits):
    return DockerEnvironment(
        image.tag, instance_id="toolz-env-smoke", base_commit=image.base_commit, workdir=image.workdir,
        limits=Limits(exec_timeout_s=60, **limits), run_id="pytest-fifo",
    )


@pytest.fixture
def no_failed_daemons(monkeypatch):
    failed: set[str] = set()
    monkeypatch.setattr(docker_backend, "_FIFOS_FAILED", failed)
    monkeypatch.delenv("SWERVE_DOCKER_SHELL", raising=False)
    return failed


@pytest.mark.docker
def test_the_fifos_are_gone_once_the_shell_runs_and_their_folder_is_read_only(toolz_image, no_failed_daemons):
    with _env(toolz_image) as env:
        assert isinstance(env.shell._transport, FifoTransport)
        host = env._fifos.host
        assert os.listdir(host) == [], "the FIFOs are unlinked as soon as both ends are open"
        wrapper = env.exec("cat /proc/$PPID/cmdline | tr '\\0' ' '").output
        named = [word for word in wrapper.replace("<>", " ").replace(">", " ").split() if word.startswith(f"{IO_DIR}/")]
        assert len(named) == 3, wrapper  # in, out and life
        # The container's command started both shells' wrappers (no exec): it names the
        # control shell's FIFOs too, none of which can be opened either.
        command = env.exec("cat /proc/1/cmdline | tr '\\0' ' '").output
        named += [word for word in command.replace("<>", " ").replace(">", " ").split()
                  if word.startswith(f"{IO_DIR}/") and word not in named]
        assert len(named) == 6, command
        probe = env.exec(
            f"ls {IO_DIR}; : > {IO_DIR}/planted; "
            + "; ".join(f"exec 7<>{path} && echo opened {path}; exec 7<&-" for path in named)
        )
        assert "Permission denied" in probe.output and "Read-only file system" in probe.output, probe.output
        assert "opened" not in probe.output, probe.output
        # The container's root (the control shell) cannot write there either.
        status, out = env._root_exec(f": > {IO_DIR}/planted 2>&1; ls -A {IO_DIR}")
        assert "Read-only file system" in out and "planted" not in out.split(), out
        assert os.listdir(host) == []
    assert not os.path.exists(host), "the host folder goes with the container"


@pytest.mark.docker
def test_a_shell_that_exits_comes_back_on_new_fifos(toolz_image, no_failed_daemons):
    with _env(toolz_image) as env:
        first = env.shell._transport
        gone = env.exec("exit 3")
        assert gone.shell_restarted
        after = env.exec("echo back; pwd")
        assert after.output.split() == ["back", toolz_image.workdir]
        assert isinstance(env.shell._transport, FifoTransport) and env.shell._transport is not first
        assert os.listdir(env._fifos.host) == []
        big = env.exec("head -c 2000000 /dev/zero | tr '\\0' a | wc -c; head -c 100000 /dev/zero | tr '\\0' b")
        assert big.output.startswith("2000000\n") and big.output_bytes == 8 + 100000
        with open(big.full_output_path, "rb") as spooled:
            assert spooled.read() == b"2000000\n" + b"b" * 100000


@pytest.mark.docker
def test_fifos_that_do_not_connect_fall_back_to_the_socket_once(toolz_image, no_failed_daemons, monkeypatch, docker_client):
    """A daemon in a VM mounts its own folder under our path: simulated by binding an
    empty folder instead of the one the FIFOs are made in."""
    elsewhere = tempfile.mkdtemp(prefix="swerve-test-elsewhere-")
    os.chmod(elsewhere, 0o755)
    monkeypatch.setattr(FifoFolder, "volume", lambda self: {elsewhere: {"bind": IO_DIR, "mode": "ro"}})
    try:
        with _env(toolz_image) as env:
            assert isinstance(env.shell._transport, ExecSocketTransport)
            assert env.exec("echo works").output.strip() == "works"
        assert docker_client.api.base_url in no_failed_daemons
        assert _shell_transport(docker_client) == "socket", "not tried again in this process"
        no_failed_daemons.clear()
        monkeypatch.setenv("SWERVE_DOCKER_SHELL", "fifo")
        with pytest.raises(InfraError, match="SWERVE_DOCKER_SHELL"):
            _env(toolz_image)
        assert os.listdir(elsewhere) == []
    finally:
        os.rmdir(elsewhere)


def test_the_transport_follows_the_variable_and_the_daemons_address(monkeypatch, no_failed_daemons):
    import docker

    unix = docker.APIClient(base_url="unix:///var/run/docker.sock", version="1.41")
    tcp = docker.APIClient(base_url="tcp://127.0.0.1:2375", version="1.41")

    class Client:
        def __init__(self, api):
            self.api = api

    assert _shell_transport(Client(unix)) == "fifo"
    assert _shell_transport(Client(tcp)) == "socket", "a TCP daemon may be on another machine"
    no_failed_daemons.add(unix.base_url)
    assert _shell_transport(Client(unix)) == "socket"
    monkeypatch.setenv("SWERVE_DOCKER_SHELL", "socket")
    no_failed_daemons.clear()
    assert _shell_transport(Client(unix)) == "socket"
    monkeypatch.setenv("SWERVE_DOCKER_SHELL", "fifo")
    assert _shell_transport(Client(tcp)) == "fifo"
    monkeypatch.setenv("SWERVE_DOCKER_SHELL", "pipes")
    with pytest.raises(InfraError, match="SWERVE_DOCKER_SHELL='pipes'.*fifo, socket or auto"):
        _shell_transport(Client(unix))


def test_prune_removes_only_the_folders_of_processes_that_are_gone(tmp_path):
    import subprocess
    import sys

    from swerve.environments.docker_transports import prune_fifo_folders

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"swerve-io-{gone.pid}-abc"
    (dead / "pipes").mkdir(parents=True)
    alive = tmp_path / f"swerve-io-{os.getpid()}-def"
    (alive / "pipes").mkdir(parents=True)
    other = tmp_path / "swerve-io-notapid-x"
    other.mkdir()
    assert prune_fifo_folders(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and alive.exists() and other.exists()


@pytest.mark.docker
@pytest.mark.parametrize("transport", ["fifo", "socket"])
def test_closing_from_another_thread_ends_a_command_in_flight(toolz_image, no_failed_daemons, docker_client,
                                                              monkeypatch, descriptor_churn, transport):
    """What abandoning a stuck episode does: the command ends as a shell restart. On FIFOs
    the exec's closed socket escaped as ValueError from select() in ~1 run of 3 before the
    transports turned a closed descriptor into EOF; pipes opened by another thread while
    close() runs take the closed descriptors' numbers (fd_guard keeps the waiting thread
    off them)."""
    import threading
    import time

    monkeypatch.setenv("SWERVE_DOCKER_SHELL", transport)
    env = _env(toolz_image)
    assert type(env.shell._transport).__name__ == {"fifo": "FifoTransport", "socket": "ExecSocketTransport"}[transport]
    container = docker_client.containers.get(env.info.extra["container"])
    results = []

    def run():
        try:
            results.append(env.exec("sleep 600", timeout=900))
        except BaseException as exc:  # reported below, with the assertion
            import traceback

            results.append("".join(traceback.format_exception(exc)))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while "sleep 600" not in container.exec_run(["ps", "-eo", "args"]).output.decode():
        assert time.monotonic() < deadline, "the command never started"
    descriptor_churn()
    env.close()
    worker.join(timeout=30)
    assert not worker.is_alive(), "close() must wake the thread waiting on the shell"
    assert results and not isinstance(results[0], str), results[0]
    assert results[0].exit_code != 0 and results[0].shell_restarted


@pytest.mark.docker
def test_opening_an_environment_starts_no_exec_and_reset_spares_the_control_wrapper(toolz_image, no_failed_daemons,
                                                                                    docker_client):
    """Both shells come from the container's own command; reset() kills everything else
    but neither the control shell nor its wrapper (whose exit would end the shell)."""
    with _env(toolz_image) as env:
        control = env.control._transport
        assert env.exec("sleep 300 & echo started").output.strip() == "started"
        env.reset()
        assert env.exec("echo after").output.strip() == "after"
        assert not docker_client.api.inspect_container(env.container.id)["ExecIDs"], "no docker exec was needed"
        assert env.control._transport is control and env.control.parent_pid in env._known_pids()
        processes = env.exec("ps -eo pid=,user=,args=").output
        assert "sleep 300" not in processes, processes
        assert env.diff() == ""
