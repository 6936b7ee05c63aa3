"""The backend registry: every command checks --backend in one place (one error line, exit 2,
no traceback), and a `module:Class` backend runs a real batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from swerve.cli import app
from swerve.environments import open_environment, pick_backend
from swerve.environments.registry import UnknownBackend, check_backend, known_backends

# Each command with the least it needs to reach its --backend option; --backend bogus comes last.
COMMANDS = [
    ["run", "--tasks", "t.jsonl", "--policy", "noop"],
    ["teach", "--tasks", "t.jsonl", "--policy", "noop"],
    ["eval", "--tasks", "t.jsonl", "--predictions", "p.jsonl"],
    ["select", "runs/x", "--tasks", "t.jsonl"],
    ["env", "shell", "some-id", "--tasks", "t.jsonl"],
    ["tasks", "mint", "pypi:toolz==0.12.1"],
    ["tasks", "validate", "t.jsonl"],
    ["train", "rl", "--tasks", "t.jsonl"],
]


def test_every_command_with_a_backend_option_is_covered():
    """A new command with --backend must be added to COMMANDS (and so get checked)."""
    import typer.main

    group = typer.main.get_command(app)

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        elif any("--backend" in getattr(p, "opts", []) for p in command.params):
            yield path

    with_backend = sorted(" ".join(path) for path in walk(group, []))
    covered = sorted(" ".join(args[: 2 if args[0] in ("env", "tasks", "train") else 1]) for args in COMMANDS)
    assert with_backend == covered


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
@pytest.mark.parametrize("backend", ["bogus", "no_such_module_xyz:Backend", "json:loads"])
def test_an_unknown_backend_is_one_line_and_exit_2(tmp_path, monkeypatch, args, backend):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*args, "--backend", backend], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: --backend") and repr(backend) in lines[0]
    if backend == "bogus":
        assert "auto, docker, local" in lines[0]


def test_env_shell_bogus_backend_from_a_real_process(tmp_path):
    """The case that printed a traceback: a real `swerve` process, its stderr and exit code."""
    done = subprocess.run([sys.executable, "-c", "from swerve.cli import app; app()", "env", "shell", "x", "--tasks", "missing.jsonl",
                           "--backend", "bogus"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "250", "NO_COLOR": "1"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert "unknown backend 'bogus'" in done.stderr


def test_the_registry_in_python():
    from swerve.cli.options import BACKEND_HELP

    assert known_backends()[:3] == ["auto", "docker", "local"]
    assert all(name in BACKEND_HELP for name in known_backends()), "--backend's help names every backend"
    assert check_backend("local") == "local" and pick_backend("local") == "local"
    with pytest.raises(UnknownBackend, match="unknown backend 'bogus'; use one of auto, docker, local"):
        pick_backend("bogus")
    with pytest.raises(UnknownBackend, match="has no for_task"):
        check_backend("json:loads")


SCRATCH_BACKEND = '''
from pathlib import Path

from agents_fake_env import calc_repo, scratch_env

OPENED = []


class Scratch:
    @classmethod
    def for_task(cls, task, *, limits, run_id):
        OPENED.append((task.instance_id, run_id, limits.exec_timeout_s))
        root = Path(__file__).parent / "repos" / task.instance_id
        if not root.exists():
            calc_repo(root)
        return scratch_env(root, instance_id=task.instance_id)
'''


def test_a_module_class_backend_runs_a_batch(tmp_path, monkeypatch):
    """`swerve run --backend scratch_backend:Scratch` opens its environments through that class."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "agents"))
    from agents_fake_env import calc_task

    from swerve.agents.trajectory import read_trajectories

    (tmp_path / "scratch_backend.py").write_text(textwrap.dedent(SCRATCH_BACKEND))
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(calc_task(with_tests=False).model_dump(mode="json")) + "\n")
    result = CliRunner().invoke(app, ["run", "--tasks", str(tasks), "--policy", "noop", "--out", str(tmp_path / "o"),
                                      "--backend", "scratch_backend:Scratch", "--no-progress"],
                                env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    import scratch_backend

    assert [(iid, timeout) for iid, _, timeout in scratch_backend.OPENED] == [("fake__calc-1", 120.0)]
    (trajectory,) = read_trajectories(tmp_path / "o" / "trajectories.jsonl")
    assert trajectory.exit_status == "submitted" and trajectory.manifest["environment"]["backend"] == "scratch"
    env = open_environment(calc_task(), "scratch_backend:Scratch", run_id="direct")
    assert env.info.instance_id == "fake__calc-1" and scratch_backend.OPENED[-1][1] == "direct"
