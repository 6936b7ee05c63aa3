"""Repository sources: reproducible commits, stripped history, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from swerve.environments.sources import prepare_repo
from swerve.errors import SourceError
from swerve.schema import Task

TOOLZ_SOURCE = "pypi:toolz==0.12.1"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SWERVE_HOME", str(tmp_path / "home-a"))
    return tmp_path


@pytest.fixture
def folder(tmp_path) -> Path:
    """A plain folder (no .git) holding a tiny package and its own .gitignore."""
    root = tmp_path / "plain"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("def answer():\n    return 41\n")
    (root / "pkg" / "_version.py").write_text("version = '1.0'\n")
    (root / ".gitignore").write_text("pkg/_version.py\n")
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    return root


BASE_PATCH = """\
--- a/pkg/__init__.py
+++ b/pkg/__init__.py
@@ -1,2 +1,2 @@
 def answer():
-    return 41
+    return 42
"""


def test_pypi_sdist_commit_is_reproducible_and_has_no_history(home, monkeypatch):
    task = Task(instance_id="toolz-src", repo="pytoolz/toolz", repo_source=TOOLZ_SOURCE)
    first = prepare_repo(task)
    monkeypatch.setenv("SWERVE_HOME", str(home / "home-b"))
    second = prepare_repo(task)

    assert first.path != second.path
    assert first.base_commit == second.base_commit == first.source_commit
    assert len(first.base_commit) == 40
    repo = first.path
    assert git(repo, "rev-list", "--all") == first.base_commit
    assert git(repo, "tag") == "" and git(repo, "remote") == ""
    assert git(repo, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert git(repo, "status", "--porcelain") == ""
    tracked = git(repo, "ls-files").splitlines()
    assert "toolz/itertoolz.py" in tracked and "toolz/_version.py" in tracked
    assert not any(".egg-info/" in path for path in tracked)
    assert "__pycache__/" in (repo / ".git" / "info" / "exclude").read_text()
    assert first.version == "0.12.1" and first.name == "toolz"


def test_second_prepare_reuses_the_cache(home, folder):
    task = Task(instance_id="plain", repo="local/plain", repo_source=str(folder))
    first = prepare_repo(task)
    marker = first.path.parent / "meta.json"
    stamp = marker.stat().st_mtime_ns
    again = prepare_repo(task)
    assert again == first
    assert marker.stat().st_mtime_ns == stamp


def test_plain_folder_commits_files_its_gitignore_names_but_not_build_products(home, folder):
    repo = prepare_repo(Task(instance_id="plain", repo="local/plain", repo_source=str(folder)))
    tracked = git(repo.path, "ls-files").splitlines()
    assert "pkg/_version.py" in tracked
    assert not any("__pycache__" in path for path in tracked)


def test_base_patch_makes_a_new_reproducible_base_commit(home, folder, monkeypatch):
    task = Task(instance_id="patched", repo="local/plain", repo_source=str(folder), base_patch=BASE_PATCH)
    plain = prepare_repo(Task(instance_id="plain", repo="local/plain", repo_source=str(folder)))
    patched = prepare_repo(task)
    assert patched.source_commit == plain.base_commit
    assert patched.base_commit != patched.source_commit
    assert "return 42" in (patched.path / "pkg" / "__init__.py").read_text()
    assert git(patched.path, "status", "--porcelain") == ""

    monkeypatch.setenv("SWERVE_HOME", str(home / "home-b"))
    assert prepare_repo(task).base_commit == patched.base_commit


def assert_holds_only(repo: Path, commit: str, forbidden: bytes) -> None:
    """`repo` has exactly one commit, `commit`, without parent, and no object, ref, reflog
    or leftover file anywhere under .git holds `forbidden`."""
    assert git(repo, "rev-list", "--all") == commit
    assert git(repo, "log", "--format=%P", commit) == ""
    assert git(repo, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert git(repo, "fsck", "--unreachable", "--lost-found", "--no-progress") == ""
    assert git(repo, "reflog", "--all") == ""
    reachable = {line.split()[0] for line in git(repo, "rev-list", "--objects", "--all").splitlines()}
    every = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
    assert set(every) <= reachable
    contents = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
                              capture_output=True, check=True).stdout
    assert forbidden not in contents
    for leftover in ("ORIG_HEAD", "FETCH_HEAD", "logs", "packed-refs.old"):
        assert not (repo / ".git" / leftover).exists(), leftover
    for path in (repo / ".git").rglob("*"):
        if path.is_file() and not path.match("*.pack") and not path.match("objects/??/*"):
            assert forbidden not in path.read_bytes(), path


def test_base_patched_repo_has_one_root_commit_and_no_object_with_the_original(home, folder):
    task = Task(instance_id="patched", repo="local/plain", repo_source=str(folder), base_patch=BASE_PATCH)
    patched = prepare_repo(task)
    assert_holds_only(patched.path, patched.base_commit, b"return 41")


def test_git_source_with_base_patch_keeps_no_history(home, tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "trunk")
    first = _commit(origin, "def answer():\n    return 41  # the original\n")
    git(origin, "tag", "v1.0")
    bug = "--- a/f.txt\n+++ b/f.txt\n@@ -1,2 +1,2 @@\n def answer():\n-    return 41  # the original\n+    return 40\n"
    task = Task(instance_id="git-patched", repo="o/r", repo_source=str(origin), base_patch=bug, source_commit=first)
    repo = prepare_repo(task)
    assert repo.source_commit == first and repo.base_commit != first
    assert repo.version == "1.0"
    assert (repo.path / "f.txt").read_text() == "def answer():\n    return 40\n"
    assert git(repo.path, "status", "--porcelain") == ""
    assert_holds_only(repo.path, repo.base_commit, b"# the original")


def test_a_base_commit_that_does_not_match_names_the_task_and_both_hashes(home, folder):
    wrong = "0" * 40
    task = Task(instance_id="mismatch-1", repo="local/plain", repo_source=str(folder), base_commit=wrong)
    with pytest.raises(SourceError) as info:
        prepare_repo(task)
    message = str(info.value)
    actual = prepare_repo(Task(instance_id="ok", repo="local/plain", repo_source=str(folder))).base_commit
    assert "mismatch-1" in message and wrong in message and actual in message
    assert "\n" not in message


def test_git_source_keeps_only_the_base_commits_ancestry(home, tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "trunk")
    commits = []
    for number in range(3):
        (origin / "f.txt").write_text(f"version {number}\n")
        git(origin, "add", "f.txt")
        git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"c{number}")
        commits.append(git(origin, "rev-parse", "HEAD"))
        if number == 0:
            git(origin, "tag", "v0.5")
    git(origin, "tag", "v9.0", commits[2])
    git(origin, "branch", "other", commits[2])

    task = Task(instance_id="gitsrc", repo="local/origin", repo_source=str(origin), base_commit=commits[1])
    repo = prepare_repo(task)
    assert repo.base_commit == commits[1]
    assert git(repo.path, "rev-list", "--all").splitlines() == [commits[1], commits[0]]
    assert git(repo.path, "tag") == "" and git(repo.path, "remote") == ""
    assert git(repo.path, "branch", "-a") == "* main"
    later = subprocess.run(["git", "-C", str(repo.path), "cat-file", "-e", commits[2]], capture_output=True)
    assert later.returncode != 0, "a later commit is still readable from the prepared repository"
    assert (repo.path / "f.txt").read_text() == "version 1\n"
    assert repo.version == "0.5"


def test_unknown_pypi_version_is_a_one_line_source_error(home):
    task = Task(instance_id="toolz-missing", repo="pytoolz/toolz", repo_source="pypi:toolz==99.99.99")
    with pytest.raises(SourceError) as info:
        prepare_repo(task)
    message = str(info.value)
    assert "\n" not in message
    assert "toolz-missing" in message and "toolz==99.99.99" in message and "NAME==VERSION" in message


def test_missing_path_is_a_source_error(home, tmp_path):
    task = Task(instance_id="nowhere", repo="x/y", repo_source=str(tmp_path / "does-not-exist"))
    with pytest.raises(SourceError, match="nowhere"):
        prepare_repo(task)


def _commit(origin: Path, text: str) -> str:
    (origin / "f.txt").write_text(text)
    git(origin, "add", "f.txt")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", text)
    return git(origin, "rev-parse", "HEAD")


def test_git_url_is_fetched_through_a_mirror_that_learns_new_commits(home, tmp_path):
    origin = tmp_path / "upstream"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "trunk")
    first = _commit(origin, "one\n")
    url = f"file://{origin}"
    repo = prepare_repo(Task(instance_id="url-1", repo="u/p", repo_source=url, base_commit=first))
    assert repo.base_commit == first

    second = _commit(origin, "two\n")
    repo = prepare_repo(Task(instance_id="url-2", repo="u/p", repo_source=url, base_commit=second))
    assert git(repo.path, "rev-list", "--all").splitlines() == [second, first]
    assert (repo.path / "f.txt").read_text() == "two\n"


def _prepare_in_child(task: Task) -> str:
    return prepare_repo(task).base_commit + " " + str(prepare_repo(task).path)


def test_two_processes_preparing_the_same_source_agree(home, folder):
    import multiprocessing

    task = Task(instance_id="race", repo="local/plain", repo_source=str(folder))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_prepare_in_child, [task, task])
    assert results[0] == results[1]
    assert not [p for p in (home / "home-a" / "repos").iterdir() if p.name.startswith(".")]


def test_base_patch_that_deletes_a_file_commits(tmp_path):
    from swerve.environments.sources import prepare_repo
    from swerve.schema import Task

    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "keep.py").write_text("x = 1\n")
    (folder / "gone.py").write_text("y = 2\n")
    deletion = "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\n--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-y = 2\n"
    task = Task(instance_id="delete-file", repo="local/proj", repo_source=str(folder), base_patch=deletion)
    repo = prepare_repo(task)
    assert repo.base_commit != repo.source_commit
    assert not (repo.path / "gone.py").exists() and (repo.path / "keep.py").exists()


def test_git_source_with_base_patch_is_pinned_by_source_commit(tmp_path, monkeypatch):
    import subprocess

    from swerve.environments.sources import prepare_repo
    from swerve.schema import Task

    origin = tmp_path / "origin"
    origin.mkdir()

    def commit(text: str) -> str:
        (origin / "mod.py").write_text(text)
        subprocess.run(["git", "-C", str(origin), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", text],
                       check=True)
        return subprocess.run(["git", "-C", str(origin), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()

    subprocess.run(["git", "init", "-q", str(origin)], check=True)
    first = commit("x = 1\n")
    bug = "--- a/mod.py\n+++ b/mod.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    task = Task(instance_id="pinned", repo="o/r", repo_source=f"file://{origin}", base_patch=bug, source_commit=first)
    before = prepare_repo(task)
    commit("x = 1\ny = 3\n")  # the origin moves on
    monkeypatch.setenv("SWERVE_HOME", str(tmp_path / "fresh-cache"))  # prepared anew, on another machine
    again = prepare_repo(task.model_copy(update={"instance_id": "pinned-again"}))
    assert before.source_commit == again.source_commit == first
    assert (again.path / "mod.py").read_text() == "x = 2\n"
