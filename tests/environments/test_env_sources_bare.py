"""Bare and shallow bare git repositories as sources (how the SWE-bench slice ships its
repositories): by `file://` URL or by plain path, the row's commit on a side branch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from swerve.environments.sources import is_git_repository, prepare_repo
from swerve.schema import Task


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def shallow_bare(tmp_path):
    """(bare repository, base commit, its parent, a later commit): the base is on branch
    base/row-1 and the repository holds only the base's last two commits of history."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    commits = []
    for number in range(4):
        (work / "file.txt").write_text(f"version {number}\n")
        _git(work, "add", "-A")
        _git(work, "commit", "-q", "-m", f"commit {number}")
        commits.append(_git(work, "rev-parse", "HEAD"))
    _git(work, "branch", "base/row-1", commits[2])
    bare = tmp_path / "proj.git"
    _git(tmp_path, "clone", "-q", "--bare", "--depth", "2", "--no-single-branch", work.as_uri(), str(bare))
    assert (bare / "shallow").is_file()
    return bare, commits[2], commits[1], commits[3]


@pytest.mark.parametrize("as_url", [True, False], ids=["file-url", "plain-path"])
def test_a_shallow_bare_repository_is_a_git_source(shallow_bare, as_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SWERVE_HOME", str(tmp_path / "home"))
    bare, base, parent, later = shallow_bare
    assert is_git_repository(bare) and not is_git_repository(tmp_path / "work" / "missing")
    source = bare.as_uri() if as_url else str(bare)
    task = Task(instance_id="owner__proj-1", repo="owner/proj", repo_source=source, base_commit=base)
    repo = prepare_repo(task)
    assert repo.base_commit == base
    assert _git(repo.path, "log", "--format=%H").split() == [base, parent]
    assert (repo.path / "file.txt").read_text() == "version 2\n"
    assert later not in _git(repo.path, "rev-list", "--all").split()
