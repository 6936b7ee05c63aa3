"""The wheelhouse: every wheel a task's environment needs, built by pip on the host.

Containers have no network, so the repository's dependencies, its test
requirements and its build requirements (for the editable install) are turned
into wheels on the host, with pip's own index configuration. Inside the
container, and in the local backend's virtualenv, `pip install --no-index
--find-links WHEELHOUSE` then needs nothing else.

A wheelhouse is cached under cache_dir("wheelhouse"), keyed by the base commit,
the test requirements and the host's Python and platform. A task that names its
own Python (a SWE-bench row) gets a wheelhouse for that Python instead, keyed by
it (see `target_wheels`): wheels downloaded for its tags, pinned environment
requirements honoured, source-only packages built inside a container of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swerve.environments.sources import PreparedRepo, telling_line
from swerve.environments.target_wheels import BuildSdists, download_for_python, marker_environment
from swerve.errors import ImageBuildError
from swerve.paths import cache_dir
from swerve.schema import Task

logger = logging.getLogger(__name__)

WHEELHOUSE_FORMAT = "2"
MANIFEST = "wheelhouse.json"
DEFAULT_BUILD_REQUIRES = ["setuptools>=40.8.0", "wheel"]
TARGET_FORMAT = "1"
TARGET_TOOLING = ("pip==24.0", "setuptools==69.5.1", "wheel==0.43.0")
"""pip, setuptools and wheel of a target-Python environment unless its env_requirements pin
them: the releases a fresh conda environment had when SWE-bench built its images (2024);
newer setuptools drops what old setup.py files use."""


def host_python() -> str:
    """major.minor of the Python that builds wheels (it must match the container's)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def scm_version_env(repo: PreparedRepo, name: str = "") -> dict[str, str]:
    """Variables that make scm-versioned projects (setuptools-scm, hatch-vcs, pdm) build
    without tags: the prepared repository has none, by design."""
    if not repo.version:
        return {}
    env = {"SETUPTOOLS_SCM_PRETEND_VERSION": repo.version, "PDM_BUILD_SCM_VERSION": repo.version}
    dist = name or repo.name
    if dist:
        normalized = "".join(ch if ch.isalnum() else "_" for ch in dist).upper()
        env[f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{normalized}"] = repo.version
    return env


def read_manifest(wheelhouse: Path) -> dict:
    return json.loads((wheelhouse / MANIFEST).read_text())


def build_wheelhouse(
    task: Task, repo: PreparedRepo, *, python: str = "", build_sdists: BuildSdists | None = None
) -> tuple[Path, list[str]]:
    """A host folder of wheels and the requirements to install from it (the project's
    runtime dependencies, the task's env_requirements and test requirements, not the
    project itself). With `python` (X.Y), the wheels are for that Python, not the host's;
    `build_sdists` builds what has no wheel for it."""
    key = _key(task, repo, python)
    root = cache_dir("wheelhouse")
    final = root / key
    if (final / MANIFEST).is_file():
        return final, read_manifest(final)["requirements"]
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    log: list[str] = []
    started = time.monotonic()
    logger.info("building wheelhouse %s", key, extra={"swerve_image": f"wheelhouse:{key}", "swerve_event": "start"})
    try:
        if python:
            manifest = _build_for_python(task, repo, staging, log, python, build_sdists)
        else:
            manifest = _build(task, repo, staging, log)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
    except ImageBuildError:
        raise
    except subprocess.CalledProcessError as exc:
        reason = telling_line(exc.stderr) if (exc.stderr or "").strip() else f"pip exited {exc.returncode}"
        raise build_failure(task.instance_id, "host wheelhouse", "\n".join(log), reason) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    logger.info("built wheelhouse %s (Python %s) in %.1f s", key, python or host_python(), seconds,
                extra={"swerve_image": f"wheelhouse:{key}", "swerve_event": "done", "swerve_seconds": seconds})
    return final, read_manifest(final)["requirements"]


PACKAGING_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")


def _key(task: Task, repo: PreparedRepo, python: str = "") -> str:
    """Keyed by the unmodified source and the packaging files as the base commit has
    them, so every task minted from one release shares one wheelhouse."""
    packaging = [
        f"{name}:{hashlib.sha256((repo.path / name).read_bytes()).hexdigest()}"
        for name in PACKAGING_FILES
        if (repo.path / name).is_file()
    ]
    parts = [
        WHEELHOUSE_FORMAT,
        repo.source_commit,
        *packaging,
        repo.version,
        json.dumps(sorted(task.test_requirements)),
        host_python(),
        sys.platform,
        platform.machine(),
    ]
    if task.env_requirements:
        parts.append(json.dumps(task.env_requirements))
    if python:
        parts += ["target", TARGET_FORMAT, python]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def _build(task: Task, repo: PreparedRepo, staging: Path, log: list[str]) -> dict:
    scratch = staging / ".scratch"
    wheels = staging
    source = scratch / "source"
    shutil.copytree(repo.path, source, symlinks=True)
    project_dir = scratch / "project"
    try:
        _pip(["wheel", "--no-deps", "-w", str(project_dir), str(source)], log, extra_env=scm_version_env(repo))
        name, version, runtime = _wheel_requirements(next(project_dir.glob("*.whl")))
    except subprocess.CalledProcessError:
        if not task.install_cmd.strip():
            raise
        log.append("# the project does not build as a wheel; the task's install_cmd installs it, so only the "
                   "test requirements are collected\n")
        name, version, runtime = repo.name, repo.version, []
    requirements = runtime + [r for r in [*task.env_requirements, *task.test_requirements] if r.strip()]
    if requirements:
        _pip(["wheel", "-w", str(wheels), *requirements], log)
    build_requires = _build_requirements(source)
    _pip(["wheel", "-w", str(wheels), *build_requires], log)
    dynamic = _dynamic_build_requirements(source, wheels, build_requires, scratch, log, scm_version_env(repo, name))
    if dynamic:
        _pip(["wheel", "-w", str(wheels), *dynamic], log)
        build_requires += [r for r in dynamic if r not in build_requires]
    shutil.rmtree(scratch, ignore_errors=True)
    files = {p.name: _sha256(p) for p in sorted(wheels.glob("*.whl"))}
    return {
        "project": name,
        "version": version,
        "requirements": requirements,
        "build_requirements": build_requires,
        "python": host_python(),
        "files": files,
        "content_hash": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
    }


def _build_for_python(
    task: Task, repo: PreparedRepo, staging: Path, log: list[str], python: str, build_sdists: BuildSdists | None
) -> dict:
    """The wheelhouse for `python` (not the host's): the project is built on the host only to
    read its requirements (markers evaluated for `python`); everything else is downloaded for
    `python`'s tags, in two resolutions (what the environment installs; what building the
    project needs), so a build requirement never constrains the environment's pins."""
    scratch = staging / ".scratch"
    source = scratch / "source"
    shutil.copytree(repo.path, source, symlinks=True)
    project_dir = scratch / "project"
    name, version, runtime = repo.name, repo.version, []
    try:
        _pip(["wheel", "--no-deps", "-w", str(project_dir), str(source)], log, extra_env=scm_version_env(repo))
        name, version, runtime = _wheel_requirements(next(project_dir.glob("*.whl")), marker_environment(python))
    except subprocess.CalledProcessError:
        log.append("# the project does not build as a wheel on the host; its requirements come from "
                   "env_requirements and the test requirements only\n")
    requirements = [r for r in [*task.env_requirements, *runtime, *task.test_requirements] if r.strip()]
    pinned = {_name(r) for r in requirements if _parses(r)}
    tooling = [t for t in TARGET_TOOLING if _name(t) not in pinned]
    pip = lambda args: _pip(args, log)  # noqa: E731
    download_for_python(python, [*tooling, *requirements], staging, scratch / "env", pip, build_sdists,
                        task.instance_id)
    build_requires = _build_requirements(source)
    download_for_python(python, build_requires, staging, scratch / "build", pip, build_sdists, task.instance_id)
    dynamic = _dynamic_build_requirements_from_index(source, build_requires, scratch, log,
                                                     scm_version_env(repo, name))
    if dynamic:
        download_for_python(python, dynamic, staging, scratch / "dynamic", pip, build_sdists, task.instance_id)
        build_requires += [r for r in dynamic if r not in build_requires]
    shutil.rmtree(scratch, ignore_errors=True)
    files = {p.name: _sha256(p) for p in sorted(staging.glob("*.whl"))}
    return {
        "project": name,
        "version": version,
        "requirements": requirements,
        "tooling": [*tooling, *(r for r in requirements if _parses(r) and _name(r) in TOOLING_NAMES)],
        "build_requirements": build_requires,
        "python": python,
        "files": files,
        "content_hash": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
    }


TOOLING_NAMES = ("pip", "setuptools", "wheel")


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


def _parses(requirement: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(requirement)
        return True
    except InvalidRequirement:
        return False


def _dynamic_build_requirements_from_index(
    source: Path, static: list[str], scratch: Path, log: list[str], env: dict[str, str]
) -> list[str]:
    """`_dynamic_build_requirements` asked with the host's Python, its static requirements
    installed from the index (the target's wheels may not run on the host)."""
    host_wheels = scratch / "host-build-wheels"
    try:
        _pip(["wheel", "-q", "-w", str(host_wheels), *static], log)
        return _dynamic_build_requirements(source, host_wheels, static, scratch, log, env)
    except subprocess.CalledProcessError:
        log.append("# could not ask the build backend for its dynamic requirements on the host; using the static ones\n")
        return []


def _pip(args: list[str], log: list[str], extra_env: dict[str, str] | None = None) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", **(extra_env or {}))
    command = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    log.append(f"$ {' '.join(command)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command, proc.stdout, proc.stderr)


def _wheel_requirements(wheel: Path, marker_env: dict[str, str] | None = None) -> tuple[str, str, list[str]]:
    """Name, version and unconditional runtime requirements (markers evaluated for this
    Python, which equals the container's, or for `marker_env`) from the wheel's METADATA."""
    import zipfile
    from email.parser import Parser

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta_name).decode("utf-8"))
    requirements = []
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({**(marker_env or {}), "extra": ""}):
            continue
        req.marker = None
        requirements.append(str(req))
    return metadata["Name"], metadata["Version"], requirements


def _build_requirements(source: Path) -> list[str]:
    """[build-system].requires, plus wheel for setuptools (older setuptools asks for it
    when building editables)."""
    import tomllib

    pyproject = source / "pyproject.toml"
    requires = list(DEFAULT_BUILD_REQUIRES)
    if pyproject.is_file():
        system = tomllib.loads(pyproject.read_text()).get("build-system", {})
        requires = list(system.get("requires", requires))
        backend = system.get("build-backend", "setuptools.build_meta")
        if backend.startswith("setuptools") and not any(r.strip().startswith("wheel") for r in requires):
            requires.append("wheel")
    return requires


_ASK_BACKEND = """
import importlib, json, sys
spec = json.loads(sys.argv[1])
sys.path[:0] = spec["backend_path"]
module, _, attribute = spec["backend"].partition(":")
backend = importlib.import_module(module)
for part in filter(None, attribute.split(".")):
    backend = getattr(backend, part)
wanted = []
for hook in ("get_requires_for_build_wheel", "get_requires_for_build_editable"):
    if hasattr(backend, hook):
        wanted += list(getattr(backend, hook)(None))
print("SWERVE-REQUIRES " + json.dumps(wanted))
"""


def _dynamic_build_requirements(
    source: Path, wheels: Path, static: list[str], scratch: Path, log: list[str], env: dict[str, str]
) -> list[str]:
    """What the build backend asks for on top of [build-system].requires to build an
    editable (PEP 517/660 get_requires_for_build_* hooks; e.g. hatchling wants `editables`)."""
    import tomllib

    system = {}
    if (source / "pyproject.toml").is_file():
        system = tomllib.loads((source / "pyproject.toml").read_text()).get("build-system", {})
    backend = system.get("build-backend", "setuptools.build_meta:__legacy__")
    backend_path = [str(source / p) for p in system.get("backend-path", [])]
    target = scratch / "backend"
    _pip(["install", "-q", "--no-index", "--find-links", str(wheels), "--target", str(target), *static], log)
    spec = json.dumps({"backend": backend, "backend_path": backend_path})
    proc = subprocess.run(
        [sys.executable, "-c", _ASK_BACKEND, spec], cwd=source, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(target), **env),
    )
    log.append(f"$ ask {backend} for its build requirements\n{proc.stdout}{proc.stderr}")
    for line in proc.stdout.splitlines():
        if line.startswith("SWERVE-REQUIRES "):
            return [r for r in json.loads(line.split(" ", 1)[1]) if r not in static]
    return []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_failure(who: str, what: str, log_text: str, reason: str = "") -> ImageBuildError:
    """The error "WHO: WHAT build failed (REASON); full log: FILE", with the log kept
    under cache_dir("logs"); REASON defaults to the log's most telling line."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = cache_dir("logs") / f"{safe_name(who)}-{safe_name(what.replace(' ', '-'))}-{stamp}-{os.getpid()}.log"
    path.write_text(log_text)
    reason = " ".join((reason or telling_line(log_text)).split())
    return ImageBuildError(f"{who}: {what} build failed ({reason[:200]}); full log: {path}", log=log_text)


def safe_name(name: str) -> str:
    """`name` usable as a file name: anything but letters, digits and -_. becomes _."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
