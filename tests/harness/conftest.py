"""Harness fixtures: the toolz task fixture and a tiny fake Environment that runs
commands with bash in a private clone of the task's prepared repository.

The fake environment is not isolated; it exists so the evaluator's logic (patch
application, restores, result capture, grading) is exercised on a real project
without Docker. The docker tests run the same scenarios in real containers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from swerve.environments.base import EnvironmentInfo
from swerve.schema import ExecResult

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TOOLZ_TASKS = FIXTURES / "toolz_tasks.jsonl"


class FakeEnvironment:
    """Environment protocol over a temp git clone; each exec is a fresh `bash -c`."""

    def __init__(self, repo: Path, instance_id: str, base_commit: str) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="swerve-fake-env-"))
        self.workdir = str(self._tmp / "repo")
        subprocess.run(["git", "clone", "-q", str(repo), self.workdir], check=True)
        subprocess.run(["git", "checkout", "-q", base_commit], cwd=self.workdir, check=True)
        self.base_commit = base_commit
        self.info = EnvironmentInfo(backend="fake", instance_id=instance_id, workdir=self.workdir, base_commit=base_commit)
        self.closed = False
        self.commands: list[str] = []
        self._env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        self._env.pop("PYTEST_ADDOPTS", None)
        self._env.pop("PYTEST_CURRENT_TEST", None)

    def _path(self, path: str) -> str:
        return path if path.startswith("/") else os.path.join(self.workdir, path)

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        if self.closed:
            from swerve.errors import InfraError

            raise InfraError("fake environment is closed")
        self.commands.append(cmd)
        started = time.monotonic()
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=self._env, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            timed_out = True
        text = out.decode("utf-8", errors="replace")
        return ExecResult(output=text, exit_code=124 if timed_out else proc.returncode, timed_out=timed_out,
                          duration_s=time.monotonic() - started)

    def read_file(self, path: str) -> str:
        return Path(self._path(path)).read_text(encoding="utf-8", errors="replace")

    def write_file(self, path: str, content: str) -> None:
        target = Path(self._path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")

    def diff(self) -> str:
        subprocess.run(["git", "add", "-A"], cwd=self.workdir, check=True)
        return subprocess.run(["git", "diff", "--cached", self.base_commit], cwd=self.workdir, capture_output=True, text=True).stdout

    def reset(self) -> None:
        subprocess.run(["git", "reset", "-q", "--hard", self.base_commit], cwd=self.workdir, check=True)
        subprocess.run(["git", "clean", "-fdqx"], cwd=self.workdir, check=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="session")
def toolz_tasks():
    from swerve.harness.tasks import load_tasks

    return {t.instance_id: t for t in load_tasks(TOOLZ_TASKS)}


@pytest.fixture(scope="session")
def prepared_toolz(toolz_tasks):
    """Each fixture task's repository at its base commit (toolz sdist + bug)."""
    from swerve.environments.sources import prepare_repo
    from swerve.errors import SourceError

    prepared = {}
    for instance_id, task in toolz_tasks.items():
        try:
            prepared[instance_id] = prepare_repo(task)
        except SourceError as exc:
            pytest.skip(f"toolz source unavailable: {exc}")
    return prepared


@pytest.fixture
def fake_opener(prepared_toolz):
    """An `opener` for evaluate(): a FakeEnvironment per call; records what it opened."""
    opened: list[FakeEnvironment] = []

    def opener(task, backend, limits, run_id):
        repo = prepared_toolz[task.instance_id.split("--")[0]]
        env = FakeEnvironment(repo.path, task.instance_id, repo.base_commit)
        opened.append(env)
        return env

    opener.opened = opened
    return opener


@pytest.fixture
def make_patch(prepared_toolz, tmp_path):
    """make_patch(instance_id, {path: new text | None (delete)}, symlinks={path: target}, edit={path: (old, new)})
    -> a git diff against the task's base commit."""
    counter = {"n": 0}

    def build(instance_id: str, files: dict | None = None, *, symlinks: dict | None = None, edit: dict | None = None) -> str:
        repo = prepared_toolz[instance_id]
        counter["n"] += 1
        work = tmp_path / f"patch-{counter['n']}"
        subprocess.run(["git", "clone", "-q", str(repo.path), str(work)], check=True)
        subprocess.run(["git", "checkout", "-q", repo.base_commit], cwd=work, check=True)
        for path, (old, new) in (edit or {}).items():
            text = (work / path).read_text()
            assert old in text, f"{old!r} not in {path}"
            (work / path).write_text(text.replace(old, new, 1))
        for path, content in (files or {}).items():
            target = work / path
            if content is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        for path, dest in (symlinks or {}).items():
            os.symlink(dest, work / path)
        subprocess.run(["git", "add", "-A"], cwd=work, check=True)
        return subprocess.run(["git", "diff", "--cached", repo.base_commit], cwd=work, capture_output=True, text=True, check=True).stdout

    return build
