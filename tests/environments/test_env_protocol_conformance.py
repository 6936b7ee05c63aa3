"""Every backend keeps the Environment protocol the same way (swerve.environments.base):
the same checks run against scratch, local and docker on the same real project (toolz
from its PyPI sdist). Docker runs twice: with its shell on FIFOs (the default with a local
daemon) and on the exec's socket (the fallback; `SWERVE_DOCKER_SHELL=socket`)."""

from __future__ import annotations

import pytest

from swerve.environments.base import Environment, Limits
from swerve.errors import InfraError

BACKENDS = [
    "scratch", "local",
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("docker-socket", marks=pytest.mark.docker),
]
TRANSPORTS = {"docker": "FifoTransport", "docker-socket": "ExecSocketTransport"}


@pytest.fixture(params=BACKENDS)
def env(request, toolz_task, monkeypatch):
    from swerve.environments.registry import backend_class

    backend, _, transport = request.param.partition("-")
    kwargs = {}
    if backend == "docker":
        kwargs["client"] = request.getfixturevalue("docker_client")
        monkeypatch.setenv("SWERVE_DOCKER_SHELL", transport or "fifo")
    environment = backend_class(backend).for_task(
        toolz_task, limits=Limits(exec_timeout_s=60), run_id="pytest-conformance", **kwargs
    )
    if request.param in TRANSPORTS:
        assert type(environment.shell._transport).__name__ == TRANSPORTS[request.param]
    yield environment
    environment.close()


def test_identity_and_a_clean_start(env, request):
    assert isinstance(env, Environment)
    assert env.info.backend == request.node.callspec.params["env"].partition("-")[0]
    assert env.info.instance_id == "toolz-env-smoke" and len(env.info.base_commit) == 40
    assert env.diff() == ""
    assert env.exec("git rev-parse HEAD").output.strip() == env.info.base_commit


def test_exec_output_exit_code_and_a_persistent_shell(env):
    result = env.exec("echo out; echo err >&2; exit_with() { return $1; }; exit_with 3")
    assert result.exit_code == 3 and result.output.split() == ["out", "err"] and not result.timed_out
    env.exec("cd toolz && export SWERVE_PROBE=42")
    assert env.exec('pwd; echo "$SWERVE_PROBE"').output.split() == [f"{env.info.workdir}/toolz", "42"]
    slow = env.exec("sleep 30", timeout=1)
    assert slow.timed_out and slow.exit_code == 124
    assert env.exec("echo after").output.strip() == "after"


def test_files_and_the_diff_against_the_base_commit(env):
    original = env.read_file("toolz/utils.py")
    assert original == env.read_file(f"{env.info.workdir}/toolz/utils.py")
    env.write_file("toolz/utils.py", original + "\nPROBE = 1\n")
    env.write_file("new/dir/added.py", "x = 1\n")
    assert env.read_file("new/dir/added.py") == "x = 1\n"
    diff = env.diff()
    assert "diff --git a/toolz/utils.py b/toolz/utils.py" in diff and "+PROBE = 1" in diff
    assert "new file mode" in diff and "b/new/dir/added.py" in diff
    assert "new/dir/added.py" in env.exec("git status --porcelain --untracked-files=all").output, \
        "diff() leaves the repository's index as the agent left it"
    with pytest.raises(FileNotFoundError):
        env.read_file("no/such/file.py")


def test_an_edit_that_keeps_the_size_is_what_the_next_python_runs(env):
    """Python trusts cached bytecode whose recorded source size and mtime (whole seconds)
    match: an edit written in the same second as the version last imported, of the same
    size, must still be what runs next (write_file drops the file's bytecode)."""
    ask = "python -c 'import probe_module; print(probe_module.VALUE)'"
    for value in ("1", "2", "3"):
        env.write_file("probe_module.py", f"VALUE = {value}\n")
        assert env.exec(ask).output.strip() == value


def test_reset_returns_to_the_pristine_base(env):
    env.write_file("toolz/utils.py", "broken = True\n")
    env.write_file("untracked.py", "x = 1\n")
    env.exec("cd toolz && export SWERVE_PROBE=7 && git config user.name agent "
             "&& echo '#!/bin/sh' > ../.git/hooks/pre-commit")
    env.exec("git -c user.email=a@b commit -qam agent-commit")
    env.reset()
    assert env.diff() == ""
    assert env.exec("git rev-parse HEAD").output.strip() == env.info.base_commit
    assert env.exec('pwd; echo "[$SWERVE_PROBE]"').output.split() == [env.info.workdir, "[]"]
    assert env.exec("git config user.name || echo unset").output.strip() == "unset"
    assert env.exec("test -e .git/hooks/pre-commit && echo hook || echo none").output.strip() == "none"
    assert env.exec("test -e untracked.py && echo kept || echo gone").output.strip() == "gone"


def test_close_is_idempotent_and_every_use_after_it_is_an_infra_error(env):
    with env as same:
        assert same is env
    env.close()
    with pytest.raises(InfraError, match="closed"):
        env.exec("echo hi")
    with pytest.raises(InfraError, match="closed"):
        env.reset()


def test_a_scratch_environment_dropped_without_close_leaves_nothing(tmp_path):
    import gc
    import os
    import subprocess
    from pathlib import Path

    from swerve.environments.scratch import ScratchEnvironment

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    for argv in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, capture_output=True)
    env = ScratchEnvironment(repo, instance_id="dropped")
    root, shell = Path(env.root), env.shell._transport.pid
    assert env.exec("echo hi").output.strip() == "hi" and root.is_dir()
    del env
    gc.collect()
    assert not root.exists()
    try:
        os.waitpid(shell, 0)  # reap it if it is still our child (killed: returns at once)
    except ChildProcessError:
        pass  # already reaped
    assert not Path(f"/proc/{shell}").exists(), "the dropped environment's shell was killed"
