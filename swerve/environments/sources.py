"""Repository sources: turn a task's `repo_source` into a host git repository
checked out at the task's base commit, with nothing after it in its history.

Sources are a git URL, a local path (a git repository or a plain folder), or a
PyPI source distribution `pypi:NAME==VERSION`. Folders without history (sdists,
plain folders) are committed with a fixed identity and fixed dates so the commit
hash is the same on every machine; that is what lets a task name its base commit
and be rebuilt anywhere.

A task with a `base_patch` (every minted task) gets a base commit with no parent:
one root commit holding the patched tree, in a repository that holds no other
object. Its source commit held the original code and the tests the patch hid, so
nothing of it may stay where the agent can read it (`git diff HEAD~1` would be the
answer). Plain git sources (SWE-bench rows) keep their history up to the base
commit, as SWE-bench does.

Prepared repositories are cached under cache_dir("repos"), keyed by what went
into them; each is built in a temporary folder and renamed into place, so two
processes preparing the same source never see a half-built one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from swerve.errors import SourceError
from swerve.fileio import file_lock
from swerve.paths import cache_dir
from swerve.schema import Task

CACHE_FORMAT = "2"
FIXED_DATE = "2000-01-01T00:00:00+0000"
FIXED_NAME = "swerve"
FIXED_EMAIL = "swerve@localhost"
BRANCH = "main"

BUILD_EXCLUDES = (
    "__pycache__/",
    "*.py[cod]",
    "*$py.class",
    "*.so",
    "*.egg-info/",
    "*.egg",
    ".eggs/",
    "/build/",
    "/dist/",
    "pip-wheel-metadata/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    ".venv/",
    ".coverage",
    ".coverage.*",
    "htmlcov/",
)

_PYPI_SPEC = re.compile(r"^pypi:\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s=]+)\s*$")


@dataclass(frozen=True)
class PreparedRepo:
    """A host git repository checked out at `base_commit`; its history holds nothing after it
    (and, for a base-patched source, nothing before it either)."""

    path: Path
    base_commit: str
    source_commit: str
    """The unpatched source's commit; with a base patch, it is not in the repository."""
    version: str = ""
    """The source's version (the sdist's, or the nearest git tag's); used to pretend a
    version for scm-versioned projects, whose tags were stripped."""
    name: str = ""
    """The distribution name when known (pypi sources)."""


def prepare_repo(task: Task) -> PreparedRepo:
    """The task's repository at its base commit, from the cache or freshly prepared."""
    source = task.repo_source.strip()
    key = _cache_key(task, source)
    root = cache_dir("repos")
    final = root / key
    cached = _read_prepared(final)
    if cached is None:
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            _build(task, source, staging)
            try:
                os.rename(staging, final)
            except OSError:
                if _read_prepared(final) is None:
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        cached = _read_prepared(final)
        if cached is None:
            raise SourceError(f"{task.instance_id}: prepared repository vanished from {final}; run again")
    _check_base_commit(task, cached)
    return cached


def parse_pypi_spec(source: str) -> tuple[str, str] | None:
    """(name, version) for `pypi:NAME==VERSION`, None for other sources."""
    match = _PYPI_SPEC.match(source)
    return (match.group(1), match.group(2)) if match else None


def git(args: list[str], cwd: Path | None = None, *, fixed_identity: bool = False, check: bool = True) -> str:
    """Run git, returning stdout; a failure raises SourceError with git's stderr."""
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    if fixed_identity:
        env.update(
            GIT_AUTHOR_NAME=FIXED_NAME,
            GIT_AUTHOR_EMAIL=FIXED_EMAIL,
            GIT_AUTHOR_DATE=FIXED_DATE,
            GIT_COMMITTER_NAME=FIXED_NAME,
            GIT_COMMITTER_EMAIL=FIXED_EMAIL,
            GIT_COMMITTER_DATE=FIXED_DATE,
        )
    command = ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "core.safecrlf=false",
               "-c", "gc.auto=0", "-c", "maintenance.auto=false", *args]
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SourceError(f"git {' '.join(args[:3])} failed: {telling_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def _cache_key(task: Task, source: str) -> str:
    parts = [CACHE_FORMAT, source, task.base_patch]
    kind = task.source_kind
    if kind == "git":
        parts += [task.base_commit, task.source_commit]
    elif kind == "path":
        path = Path(source).expanduser()
        if is_git_repository(path):
            parts += [str(path.resolve()), task.source_commit or task.base_commit or _head(path)]
        elif path.is_dir():
            parts += [str(path.resolve()), _tree_fingerprint(path)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def is_git_repository(path: Path) -> bool:
    """A work tree with .git, or a bare repository (HEAD, objects/ and refs/ at its top,
    as SWE-bench slices and `git clone --bare` leave them; shallow ones too)."""
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _head(path: Path) -> str:
    try:
        return git(["rev-parse", "HEAD"], cwd=path).strip()
    except SourceError:
        return ""


def _tree_fingerprint(path: Path) -> str:
    """Cheap change detector for a plain folder: names, sizes and mtimes."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_prepared(folder: Path) -> PreparedRepo | None:
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text())
    return PreparedRepo(
        path=folder / "repo",
        base_commit=meta["base_commit"],
        source_commit=meta["source_commit"],
        version=meta.get("version", ""),
        name=meta.get("name", ""),
    )


def _check_base_commit(task: Task, repo: PreparedRepo) -> None:
    if task.base_commit and task.base_commit != repo.base_commit and not repo.base_commit.startswith(task.base_commit):
        raise SourceError(
            f"{task.instance_id}: base_commit {task.base_commit} does not match the commit prepared from "
            f"{task.repo_source!r} (+ base_patch): {repo.base_commit}; fix the task's base_commit or its source"
        )


def _build(task: Task, source: str, staging: Path) -> None:
    repo = staging / "repo"
    work = staging / "work"
    work.mkdir()
    pypi = parse_pypi_spec(source)
    kind = task.source_kind
    name = version = ""
    if kind == "pypi":
        if pypi is None:
            raise SourceError(
                f"{task.instance_id}: repo_source {source!r} is not of the form pypi:NAME==VERSION; fix the task"
            )
        name, version = pypi
        _download_sdist(task, name, version, work, repo)
        source_commit = _commit_folder(repo, f"{name} {version} (source distribution)")
    elif kind == "path" and not is_git_repository(Path(source).expanduser()):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise SourceError(
                f"{task.instance_id}: repo_source {source!r} is neither a folder, a git URL nor pypi:NAME==VERSION; "
                "fix the path"
            )
        shutil.copytree(folder, repo, symlinks=True)
        source_commit = _commit_folder(repo, f"{folder.name} (folder)")
    else:
        origin = str(Path(source).expanduser().resolve()) if kind == "path" else _mirror(task, source)
        source_commit, version = _clone_at(task, origin, work / "clone", repo)
    base_commit = source_commit
    if task.base_patch:
        base_commit = _apply_base_patch(task, repo)
    _write_excludes(repo)
    _strip_history(repo)
    meta = {
        "repo_source": source,
        "base_commit": base_commit,
        "source_commit": source_commit,
        "version": version,
        "name": name,
    }
    (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


def _download_sdist(task: Task, name: str, version: str, work: Path, repo: Path) -> None:
    """pip fetches the sdist with the machine's own index configuration."""
    downloads = work / "download"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"{name}=={version}", "-d", str(downloads),
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(downloads.glob("*")) if downloads.exists() else []
    if proc.returncode != 0 or not archives:
        raise SourceError(
            f"{task.instance_id}: cannot download the source distribution pypi:{name}=={version}; "
            f"check NAME==VERSION exists on the package index (pip: {telling_line(proc.stderr or proc.stdout)})"
        )
    _unpack_without_top(archives[0], work / "unpacked", repo)


def _unpack_without_top(archive: Path, scratch: Path, dest: Path) -> None:
    scratch.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(scratch)
    else:
        with tarfile.open(archive) as handle:
            handle.extractall(scratch, filter="data")
    entries = list(scratch.iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else scratch
    shutil.move(str(top), str(dest))


def _commit_folder(repo: Path, message: str) -> str:
    """Commit every file except build products, whatever the folder's own .gitignore says
    (sdists ship generated files their .gitignore names, e.g. _version.py)."""
    git(["init", "-q", "-b", BRANCH], cwd=repo)
    _write_excludes(repo)
    _add_everything(repo)
    git(["commit", "-q", "--allow-empty", "--no-verify", "-m", message], cwd=repo, fixed_identity=True)
    return git(["rev-parse", "HEAD"], cwd=repo).strip()


def _add_everything(repo: Path) -> None:
    listing = git(
        ["ls-files", "-z", "--others", "--modified", "--exclude-from", str(repo / ".git" / "info" / "exclude")],
        cwd=repo,
    )
    git(["add", "-A"], cwd=repo)
    present = [path for path in listing.split("\0") if path and os.path.lexists(repo / path)]
    if present:
        with tempfile.NamedTemporaryFile("w", delete=False) as handle:
            handle.write("\0".join(present))
        try:
            git(["add", "-f", "--pathspec-from-file", handle.name, "--pathspec-file-nul"], cwd=repo)
        finally:
            os.unlink(handle.name)


def _mirror(task: Task, url: str) -> str:
    """A shared bare mirror of `url` under cache_dir("git-mirrors"), so tasks of one
    repository fetch it once; fetched again only when the wanted commit is missing."""
    root = cache_dir("git-mirrors")
    name = hashlib.sha256(url.encode()).hexdigest()[:20]
    mirror = root / f"{name}.git"
    with file_lock(root / f"{name}.lock"):
        if not (mirror / "HEAD").exists():
            staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
            try:
                git(["clone", "-q", "--mirror", url, str(staging / "m.git")])
                os.rename(staging / "m.git", mirror)
            except SourceError as exc:
                raise SourceError(f"{task.instance_id}: cannot clone {url!r}: {exc}; check the URL") from exc
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            wanted = _wanted_source_commit(task)
            if not _has_commit(mirror, wanted):
                try:
                    git(["remote", "update", "--prune"], cwd=mirror)
                except SourceError as exc:
                    raise SourceError(f"{task.instance_id}: cannot fetch {url!r}: {exc}") from exc
    return str(mirror)


def _has_commit(repo: Path, commit: str) -> bool:
    if not commit:
        return False
    proc = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    return proc.returncode == 0


def _wanted_source_commit(task: Task) -> str:
    """The commit to clone: the task's source_commit; else its base_commit when no
    base_patch builds on top; else empty (the default branch's head)."""
    if task.source_commit:
        return task.source_commit
    return task.base_commit if task.base_commit and not task.base_patch else ""


def _clone_at(task: Task, origin: str, clone: Path, repo: Path) -> tuple[str, str]:
    """Clone, then copy only the wanted commit's ancestry into a fresh repository."""
    try:
        git(["clone", "-q", "--no-checkout", origin, str(clone)])
    except SourceError as exc:
        raise SourceError(f"{task.instance_id}: cannot clone {origin!r}: {exc}; check the URL or path") from exc
    wanted = _wanted_source_commit(task) or "HEAD"
    try:
        commit = git(["rev-parse", "--verify", f"{wanted}^{{commit}}"], cwd=clone).strip()
    except SourceError as exc:
        raise SourceError(
            f"{task.instance_id}: commit {wanted} not found in {origin!r}; fix the task's base_commit"
        ) from exc
    described = git(["describe", "--tags", "--abbrev=0", commit], cwd=clone, check=False).strip()
    git(["branch", "-f", "swerve-base", commit], cwd=clone)
    git(["clone", "-q", "--no-local", "--single-branch", "--no-tags", "--branch", "swerve-base", str(clone), str(repo)])
    git(["checkout", "-q", "-B", BRANCH], cwd=repo)
    return commit, _version_from_tag(described)


def _version_from_tag(tag: str) -> str:
    candidate = tag.rsplit("/", 1)[-1].lstrip("vV")
    try:
        from packaging.version import Version

        return str(Version(candidate)) if candidate else ""
    except Exception:
        return ""


def _apply_base_patch(task: Task, repo: Path) -> str:
    """Apply the base patch and make the patched tree the repository's only commit."""
    with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False) as handle:
        handle.write(task.base_patch if task.base_patch.endswith("\n") else task.base_patch + "\n")
    try:
        git(["apply", "--whitespace=nowarn", handle.name], cwd=repo)
    except SourceError as exc:
        raise SourceError(f"{task.instance_id}: base_patch does not apply to {task.repo_source!r}: {exc}") from exc
    finally:
        os.unlink(handle.name)
    _write_excludes(repo)
    _add_everything(repo)
    tree = git(["write-tree"], cwd=repo).strip()
    root = git(["commit-tree", tree, "-m", "swerve base"], cwd=repo, fixed_identity=True).strip()
    _keep_only_commit(repo, root)
    return root


def _keep_only_commit(repo: Path, commit: str) -> None:
    """Replace the repository's object store by one holding only `commit` and what it
    reaches: a fresh .git is fetched into from the old one, which is then deleted, so
    no pack, loose object, reflog or ORIG_HEAD of the old history survives."""
    fresh = repo.parent / (repo.name + ".fresh-git")
    git(["init", "-q", "--bare", str(fresh)])
    git(["update-ref", f"refs/heads/{BRANCH}", commit], cwd=repo)
    git(["fetch", "-q", "--no-tags", str(repo.resolve()), f"refs/heads/{BRANCH}:refs/heads/{BRANCH}"], cwd=fresh)
    shutil.rmtree(repo / ".git")
    os.rename(fresh, repo / ".git")
    git(["config", "core.bare", "false"], cwd=repo)
    git(["config", "core.logallrefupdates", "true"], cwd=repo)
    git(["symbolic-ref", "HEAD", f"refs/heads/{BRANCH}"], cwd=repo)
    (repo / ".git" / "FETCH_HEAD").unlink(missing_ok=True)
    git(["reset", "-q"], cwd=repo)


def _write_excludes(repo: Path) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text("# Python build and cache products (written by swerve)\n" + "\n".join(BUILD_EXCLUDES) + "\n")


def _strip_history(repo: Path) -> None:
    """Leave one branch, no remotes, tags, stashes, reflog or ORIG_HEAD, and no
    unreachable objects."""
    for remote in git(["remote"], cwd=repo).split():
        git(["remote", "remove", remote], cwd=repo)
    refs = git(["for-each-ref", "--format=%(refname)"], cwd=repo).split()
    for ref in refs:
        if ref != f"refs/heads/{BRANCH}":
            git(["update-ref", "-d", ref], cwd=repo)
    for leftover in ("ORIG_HEAD", "FETCH_HEAD", "MERGE_HEAD", "logs"):
        path = repo / ".git" / leftover
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    git(["reflog", "expire", "--expire=now", "--all"], cwd=repo)
    git(["gc", "-q", "--prune=now"], cwd=repo)


def telling_line(text: str, limit: int = 240) -> str:
    """The most telling line of a tool's output: its last error line, else its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if any(word in line.lower() for word in ("error", "fatal", "failed"))] or lines
    return errors[-1][:limit] if errors else "no output"
