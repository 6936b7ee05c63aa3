"""One-line errors for a missing daemon and bad input; the env CLI on the local backend."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from swerve.cli import app


def test_missing_daemon_is_one_line_naming_the_fix(tmp_path):
    code = (
        "from swerve.environments.docker import docker_client\n"
        "from swerve.errors import DockerUnavailable\n"
        "try:\n    docker_client()\nexcept DockerUnavailable as exc:\n    print(exc)\n"
    )
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    message = out.stdout.strip()
    assert message.count("\n") == 0 and message.startswith("no Docker daemon answers")
    assert "--backend local" in message and "dockerd" in message


def test_explicit_unknown_backend_is_refused():
    from swerve.environments import pick_backend

    with pytest.raises(ValueError, match="unknown backend 'podman'"):
        pick_backend("podman")


def test_env_shell_on_the_local_backend(tmp_path):
    from swerve.schema import Task

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(Task(instance_id="toolz-cli", repo="pytoolz/toolz", repo_source="pypi:toolz==0.12.1").model_dump_json() + "\n")
    result = CliRunner().invoke(
        app, ["env", "shell", "toolz-cli", "--tasks", str(tasks), "--backend", "local"],
        input="cd toolz && pwd\ngit rev-parse --is-inside-work-tree\nexit\n",
    )
    assert result.exit_code == 0, result.output
    assert "/repo/toolz" in result.output and "true" in result.output


def test_env_shell_names_an_unknown_task(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"instance_id": "a", "repo": "o/r", "repo_source": "pypi:toolz==0.12.1"}\n')
    result = CliRunner().invoke(app, ["env", "shell", "nope", "--tasks", str(tasks), "--backend", "local"])
    assert result.exit_code != 0
    assert "no task 'nope'" in result.output


def test_env_help_is_complete():
    result = CliRunner().invoke(app, ["env", "shell", "--help"])
    assert result.exit_code == 0
    for option in ("--tasks", "--backend", "--keep"):
        assert option in result.output
