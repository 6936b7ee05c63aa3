"""A row's pinned packages, read from its own repository at `environment_setup_commit`.

SWE-bench fetches the requirements file over the network from the repository's
host at the environment-setup commit; swerve reads the same file from the
row's `repo_source` (a local path, a `file://` URL, or, for a remote URL, the
clone swerve keeps of it anyway), so nothing is fetched that the build would
not fetch.

The file's semantics follow SWE-bench's: the first of the repository's
requirement paths that exists wins; its `-r other.txt` lines are read (one
level, relative to the file) and come first; `#` comments, `-e .` and `.[test`
lines are dropped; yanked packages are renamed (types-pkg_resources). Lines are
then turned into plain pip specifiers (inline comments and pip options such as
`--hash` or `-c` are dropped: the list is installed from a wheelhouse).
"""

from __future__ import annotations

import posixpath
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

from swerve.harness.swebench.specs import SpecError, requirement_replacements

_EXCLUDED_PREFIXES = ("-e .", "#", ".[test")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def local_git_dir(repo_source: str) -> Path | None:
    """The local repository a `repo_source` names (`file://` URL or path), else None."""
    source = repo_source.strip()
    if source.startswith("file://"):
        return Path(unquote(urlparse(source).path))
    if "://" in source or source.startswith(("git@", "pypi:")):
        return None
    return Path(source).expanduser()


class CommitReader:
    """Reads files at one commit of a git repository (bare or not)."""

    def __init__(self, git_dir: Path, commit: str, *, instance_id: str, source: str) -> None:
        self.git_dir, self.commit, self.instance_id, self.source = git_dir, commit, instance_id, source
        probe = self._git("cat-file", "-e", f"{commit}^{{commit}}")
        if probe.returncode != 0:
            raise SpecError(
                f"{instance_id}: environment_setup_commit {commit} is not in {source!r}; point repo_source at a "
                f"clone that holds it (git fetch origin {commit})"
            )

    def _git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(self.git_dir), *args], capture_output=True, text=True)

    def read(self, path: str) -> str | None:
        shown = self._git("show", f"{self.commit}:{path}")
        return shown.stdout if shown.returncode == 0 else None


def open_commit(repo_source: str, commit: str, *, instance_id: str) -> CommitReader:
    """A reader for `commit` of the row's repository, from a local copy only."""
    local = local_git_dir(repo_source)
    if local is None:
        local = _remote_mirror(repo_source, commit, instance_id)
    if not local.exists():
        raise SpecError(f"{instance_id}: repo_source {repo_source!r} does not exist; point it at a clone of the "
                        "repository (a path or a file:// URL)")
    return CommitReader(local, commit, instance_id=instance_id, source=repo_source)


def _remote_mirror(url: str, commit: str, instance_id: str) -> Path:
    """swerve's shared clone of a remote git source (the one image builds use); fetched
    again only when it lacks `commit`."""
    from swerve.environments import sources
    from swerve.errors import SourceError
    from swerve.schema import Task

    stand_in = Task(instance_id=instance_id, repo="remote/source", repo_source=url, base_commit=commit)
    try:
        return Path(sources._mirror(stand_in, url))
    except SourceError as exc:
        why = str(exc).removeprefix(f"{instance_id}: ")
        raise SpecError(f"{instance_id}: cannot read the requirements: {why} (or point repo_source at a local clone)") from None


def _excluded(line: str) -> bool:
    return line.strip().startswith(_EXCLUDED_PREFIXES)


def requirements_text(reader: CommitReader, paths: list[str]) -> tuple[str, str]:
    """(SWE-bench's combined requirements text, the path it came from)."""
    for path in paths:
        text = reader.read(path)
        if text is not None:
            break
    else:
        raise SpecError(
            f"{reader.instance_id}: none of {', '.join(paths)} exists at environment_setup_commit "
            f"{reader.commit[:12]} in {reader.source!r}; check the row's environment_setup_commit"
        )
    folder = posixpath.dirname(path)
    included: list[str] = []
    own: list[str] = []
    for line in text.split("\n"):
        if line.strip().startswith("-r"):
            other = reader.read(posixpath.normpath(posixpath.join(folder, line.strip()[2:].strip())))
            if other is not None:
                included.extend(extra for extra in other.split("\n") if not _excluded(extra))
        elif not _excluded(line):
            own.append(line)
    return "\n".join([*included, "\n".join(own)]), path


def replace_yanked(text: str) -> str:
    for old, new in requirement_replacements():
        pattern = rf"^{re.escape(old)}([<>=!~]=?.*|$)"
        if new is None:
            text = re.sub(pattern + r"\n?", "", text, flags=re.MULTILINE)
        else:
            text = re.sub(pattern, new, text, flags=re.MULTILINE)
    return text


def specifiers(text: str) -> list[str]:
    """Plain pip specifiers from requirements text (comments and pip options dropped)."""
    out = []
    for raw in text.split("\n"):
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith(("#", "-", ".", "/")):
            continue
        out.append(line)
    return out


def conda_packages(packages: str) -> list[str]:
    """A spec's `packages` list (conda names, `name=1.2` pins) as pip specifiers."""
    return [_conda_pin(item) for item in shlex.split(packages)]


def _conda_pin(item: str) -> str:
    """conda's `name=1.2` means any 1.2.x: pip's `name==1.2.*`."""
    match = re.match(r"^([A-Za-z0-9._-]+)=([^=<>!].*)$", item)
    if not match:
        return item
    version = match.group(2)
    return f"{match.group(1)}=={version if version.endswith('*') else version + '.*'}"


def distribution_name(specifier: str) -> str:
    """Normalised distribution name of a pip specifier ('' when it has none)."""
    match = _NAME.match(specifier)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def later_pins_win(specs: list[str]) -> list[str]:
    """Keep the last specifier of each distribution, in first-seen order; SWE-bench
    installs its pip_packages after the requirements, so theirs win."""
    last: dict[str, str] = {}
    order: list[str] = []
    for spec in specs:
        name = distribution_name(spec) or spec
        if name not in last:
            order.append(name)
        last[name] = spec
    return [last[name] for name in order]


def environment_yml_requirements(text: str) -> list[str]:
    """An environment.yml's dependencies as pip specifiers (conda pins -> `==`; the
    pip section as is; python and pip themselves dropped)."""
    import yaml

    data = yaml.safe_load(text) or {}
    out: list[str] = []
    for dep in data.get("dependencies", []) or []:
        if isinstance(dep, dict):
            out.extend(str(p) for p in dep.get("pip", []) or [])
            continue
        name = str(dep).split("::")[-1].strip()
        if distribution_name(name) in ("python", "pip"):
            continue
        out.append(_conda_pin(name.replace(" ", "")))
    return [s for s in out if not s.startswith(("-", "."))]
