"""Harness fixtures: the toolz tasks and an opener that gives evaluate() the scratch
backend (swerve.environments.scratch: a private clone of the task's prepared
repository, commands in a persistent bash, no isolation), so the evaluator's logic
(patch application, restores, result capture, grading) is exercised on a real project
without Docker. The docker tests run the same scenarios in real containers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TOOLZ_TASKS = FIXTURES / "toolz_tasks.jsonl"


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
    """An `opener` for evaluate(): a ScratchEnvironment per call; records what it opened."""
    from swerve.environments.scratch import ScratchEnvironment

    opened: list[ScratchEnvironment] = []

    def opener(task, backend, limits, run_id):
        repo = prepared_toolz[task.instance_id.split("--")[0]]
        env = ScratchEnvironment(repo.path, instance_id=task.instance_id, base_commit=repo.base_commit,
                                 limits=limits, run_id=run_id)
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
