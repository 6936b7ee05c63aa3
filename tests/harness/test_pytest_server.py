"""The task factory's pytest server: one process that imported pytest, a forked child per
run. The protocol on this machine (the server script, bash's client text, real pytest);
then in a real Docker environment with toolz's own suite: the same statuses as new
interpreters, a mutated module seen by the next run, kept through reset() and through a
command's timeout, and a gone server reported at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pluggy
import pytest

from swerve.environments import Limits, open_environment
from swerve.errors import InfraError
from swerve.harness import logparsers
from swerve.harness.call_map import run_selected
from swerve.harness.hidden_tests import open_pytest_server, run_pytest_on
from swerve.harness.mint import source_task
from swerve.harness.pytest_server import SERVER, PytestServer, client_script, request_text, served_command
from swerve.harness.warm_runs import warm_up
from swerve.schema import TestStatus as Status

SOURCE = "pypi:toolz==0.12.1"
RAISES = "toolz/tests/test_utils.py::test_raises"

TESTS = """\
import os


def test_pass():
    with open(os.environ["PIDS"], "a") as handle:
        handle.write(f"{os.getpid()}\\n")


def test_fail():
    assert False, "expected"
"""


def _start(tmp_path: Path, workdir: Path, **variables: str) -> tuple[PytestServer, subprocess.Popen]:
    """The server script started on this machine as start_pytest_server starts it."""
    folder = tmp_path / "server"
    folder.mkdir()
    os.mkfifo(folder / "requests")
    (folder / "server.py").write_text(SERVER)
    environment = {**os.environ, "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **variables}
    environment.pop("PYTEST_ADDOPTS", None)
    with open(folder / "log", "w") as log:
        process = subprocess.Popen([sys.executable, str(folder / "server.py"), str(folder), str(workdir)], cwd="/",
                                   env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (folder / "status").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return PytestServer(folder=str(folder), pid=process.pid), process


def _serve(server: PytestServer, folder: Path, command: str, *, timeout: float = 60) -> tuple[str, str]:
    """(the answer, the run's output) for `command` sent through bash's client text."""
    folder.mkdir()
    output, reply, request_file = folder / "out", folder / "reply", folder / "request.json"
    os.mkfifo(reply)
    request = request_text(server, command, output_file=str(output), reply=str(reply), timeout=timeout)
    assert request is not None
    request_file.write_text(request)
    script = client_script(server, request_file=str(request_file), reply=str(reply), answer_marker="ANSWER=",
                           wait_s=int(timeout) + 5)
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout + 30).stdout
    answer = next(line[len("ANSWER="):] for line in shown.splitlines() if line.startswith("ANSWER="))
    return answer, output.read_text() if output.exists() else ""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_pkg.py").write_text(TESTS)
    return root


def _gone(pid: int, within: float = 10) -> bool:
    """True once `pid` has exited (absent, or a zombie waiting for its reaper)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=30)


def test_each_run_is_a_new_child_and_its_exit_code_comes_back(tmp_path: Path, repo: Path):
    pids = tmp_path / "pids.txt"
    server, process = _start(tmp_path, repo, PIDS=str(pids))
    try:
        assert (Path(server.folder) / "status").read_text().startswith('{"ok": true')
        junit = tmp_path / "junit.xml"
        for round_ in range(2):
            answer, output = _serve(server, tmp_path / f"run{round_}",
                                    f"python -m pytest -p no:cacheprovider --junitxml={junit} tests/test_pkg.py")
            assert answer == "1" and "1 failed, 1 passed" in output
            statuses = logparsers.parse_junit_xml(junit.read_text())
            assert statuses == {"tests/test_pkg.py::test_pass": Status.PASSED,
                                "tests/test_pkg.py::test_fail": Status.FAILED}
        answer, _ = _serve(server, tmp_path / "pass", "python -m pytest -p no:cacheprovider tests/test_pkg.py -k pass")
        assert answer == "0"
        children = pids.read_text().split()
        assert len(children) == 3 and len(set(children)) == 3 and str(process.pid) not in children
        assert process.poll() is None
    finally:
        _stop(process)


def test_a_run_past_its_timeout_is_killed_and_the_server_goes_on(tmp_path: Path, repo: Path):
    grandchild = tmp_path / "grandchild.pid"
    (repo / "tests" / "test_slow.py").write_text(
        "import subprocess, time\n\n\ndef test_slow():\n"
        f"    open({str(grandchild)!r}, 'w').write(str(subprocess.Popen(['sleep', '300']).pid))\n"
        "    time.sleep(300)\n")
    server, process = _start(tmp_path, repo, PIDS=str(tmp_path / "pids.txt"))
    try:
        started = time.monotonic()
        answer, _ = _serve(server, tmp_path / "slow", "python -m pytest -p no:cacheprovider tests/test_slow.py",
                           timeout=2)
        assert answer == "timeout" and time.monotonic() - started < 20
        assert _gone(int(grandchild.read_text()))  # the child's whole process group was killed
        answer, _ = _serve(server, tmp_path / "next", "python -m pytest -p no:cacheprovider tests/test_pkg.py")
        assert answer == "1"
    finally:
        _stop(process)


def test_the_commands_variables_reach_the_child_and_pythonpath_leads_sys_path(tmp_path: Path, repo: Path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "swerve_helper.py").write_text("WHERE = 'extra'\n")
    (repo / "tests" / "test_env.py").write_text(
        "import os, sys\n\n\ndef test_env():\n    import swerve_helper\n"
        f"    assert swerve_helper.WHERE == 'extra'\n"
        f"    assert sys.path.index({str(extra)!r}) < sys.path.index(os.path.dirname(os.__file__))\n"
        "    assert os.environ['SWERVE_MARK'] == 'on'\n")
    server, process = _start(tmp_path, repo, PIDS=str(tmp_path / "pids.txt"))
    try:
        answer, output = _serve(server, tmp_path / "env", f"SWERVE_MARK=on PYTHONPATH={extra} python -m pytest "
                                                          "-p no:cacheprovider tests/test_env.py")
        assert answer == "0", output
    finally:
        _stop(process)


def test_the_server_refuses_when_pytest_was_imported_from_the_repository(tmp_path: Path):
    site_packages = Path(pluggy.__file__).resolve().parent.parent  # "the repository" holds pytest itself
    server, process = _start(tmp_path, site_packages)
    try:
        assert process.wait(timeout=60) == 1
        status = (Path(server.folder) / "status").read_text()
        assert "\"ok\": false" in status and "from the repository" in status and "_pytest" in status
    finally:
        if process.poll() is None:
            _stop(process)


def test_a_gone_server_is_noticed_within_seconds(tmp_path: Path, repo: Path):
    server, process = _start(tmp_path, repo, PIDS=str(tmp_path / "pids.txt"))
    _stop(process)
    started = time.monotonic()
    answer, _ = _serve(server, tmp_path / "gone", "python -m pytest tests/test_pkg.py", timeout=120)
    assert answer == "" and time.monotonic() - started < 10


def test_only_plain_pytest_commands_of_the_default_interpreter_are_served():
    assert served_command("python -m pytest -rA tests/x.py") == ([], ["-rA", "tests/x.py"], True)
    assert served_command("A=1 PYTHONPATH=/p pytest -x") == ([("A", "1"), ("PYTHONPATH", "/p")], ["-x"], False)
    assert served_command("python -W error -m pytest") is None  # interpreter options
    assert served_command("python3.9 -m pytest") is None  # another interpreter
    assert served_command("./runtests.py") is None
    assert served_command("tox -e py") is None


def test_only_an_environment_that_keeps_processes_gets_a_server(tmp_path: Path):
    from swerve.environments.scratch import ScratchEnvironment

    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_pkg.py").write_text("def test_one():\n    pass\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "b"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    env = ScratchEnvironment(root, instance_id="server-local")
    try:
        assert env.keeps_processes is False
        assert open_pytest_server(env, source_task(SOURCE)) is None
        with pytest.raises(NotImplementedError):
            env.keep_process_across_reset(os.getpid())
    finally:
        env.close()


@pytest.mark.docker
def test_served_runs_match_new_interpreters_and_the_server_outlives_reset(docker_client):
    task = source_task(SOURCE)
    with open_environment(task, "docker", Limits(exec_timeout_s=300), run_id="test-pytest-server") as env:
        without = run_pytest_on(env, task, [], timeout=300)
        env.reset()
        runs = warm_up(env, task, timeout=300)
        server = runs.server
        assert server is not None and runs.bytecode_cache
        served = run_pytest_on(env, task, [], timeout=300, bytecode_cache=runs.bytecode_cache, server=server)
        assert served.command.startswith(f"(pytest server {server.pid})")
        assert served.statuses == without.statuses and len(served.statuses) > 100
        assert served.exit_code == 0 and "Test Exit Code: 0" in served.output

        # a mutated module is imported by the next child, not taken from the server
        original = env.read_file("toolz/utils.py")
        env.write_file("toolz/utils.py", original.replace("return False", "return @").replace(
            "return True", "return False").replace("return @", "return True"))
        mutated = run_pytest_on(env, task, ["toolz/tests/test_utils.py"], timeout=300,
                                bytecode_cache=runs.bytecode_cache, server=server)
        assert mutated.statuses[RAISES] is Status.FAILED and mutated.exit_code == 1

        env.exec("echo x > /tmp/other")
        env.reset()
        assert env.exec("test -e /tmp/other").exit_code == 1
        assert env.exec(f"kill -0 {server.pid}").exit_code == 0  # kept through reset()
        again = run_pytest_on(env, task, ["toolz/tests/test_utils.py"], timeout=300,
                              bytecode_cache=runs.bytecode_cache, server=server)
        assert again.statuses[RAISES] is Status.PASSED

        # the call map's selected runs carry variables (the probe's PYTHONPATH)
        selected = run_selected(env, task, [RAISES], timeout=300, bytecode_cache=runs.bytecode_cache, server=server)
        assert selected.statuses == {RAISES: Status.PASSED}

        timed_out = env.exec("sleep 30", timeout=1)
        assert timed_out.timed_out
        assert env.exec(f"kill -0 {server.pid}").exit_code == 0  # spared by the kill after a timeout

        env.exec(f"kill -9 {server.pid}")
        started = time.monotonic()
        with pytest.raises(InfraError, match="pytest server .* did not answer"):
            run_pytest_on(env, task, [], timeout=300, bytecode_cache=runs.bytecode_cache, server=server)
        assert time.monotonic() - started < 30


@pytest.mark.docker
def test_a_source_that_pytest_imports_gets_no_server(docker_client):
    """pluggy minted from its own sdist: the server's `import pytest` would load the
    repository's pluggy, which a candidate mutates, so runs start their own interpreter."""
    task = source_task("pypi:pluggy==1.5.0")
    with open_environment(task, "docker", Limits(exec_timeout_s=300), run_id="test-pytest-server") as env:
        assert open_pytest_server(env, task) is None
        status = env.read_file("/tmp/swerve-pytest-server/status")
        assert '"ok": false' in status and "pluggy" in status and "from the repository" in status
        assert env.exec("ps -eo args | grep -c '[s]erver.py'").output.strip() == "0"
