"""Wheels for a Python other than the host's (a SWE-bench row's own Python).

The host's pip downloads wheels for the target's tags (`--python-version`,
`--abi`, the manylinux platforms its Debian suite's glibc runs). pip evaluates
environment markers for the interpreter it runs on, not for the target, so
after each download the wheels' own requirements are read back and evaluated
for the target; those still missing are added and the download runs again.
A requirement that has no wheel for the target is fetched as a source
distribution and handed to `build_sdists`, which builds it inside a container
of the target Python (no network there); the download then finds the built
wheel among its find-links.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from swerve.environments.sources import telling_line
from swerve.errors import ImageBuildError

GLIBC_OF_PYTHON = {"3.9": 31, "3.11": 36, "3.13": 41}
"""glibc minor version of the Debian suite that ships each Python (bullseye, bookworm, trixie)."""
MAX_ROUNDS = 8

BuildSdists = Callable[[list[Path], Path, Path], None]
"""build_sdists(sdists, wheelhouse, out): turn each source distribution into a wheel in `out`
with the target Python, installing build requirements only from `wheelhouse`."""

Pip = Callable[[list[str]], None]

_NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def target_flags(python: str) -> list[str]:
    """pip options that select wheels for CPython `python` (X.Y) on this machine's architecture."""
    major, minor = python.split(".")[:2]
    machine = platform.machine()
    glibc = GLIBC_OF_PYTHON.get(python, 17)
    platforms = [f"manylinux_2_{m}_{machine}" for m in range(glibc, 16, -1)]
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}", f"linux_{machine}"]
    flags = ["--python-version", f"{major}.{minor}", "--implementation", "cp"]
    for abi in (f"cp{major}{minor}", "abi3", "none"):
        flags += ["--abi", abi]
    for name in platforms:
        flags += ["--platform", name]
    return flags


def marker_environment(python: str) -> dict[str, str]:
    """Environment markers as CPython `python` on Linux sees them."""
    from packaging.markers import default_environment

    env = dict(default_environment())
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        implementation_name="cpython",
        implementation_version=f"{python}.0",
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
    )
    return env


def download_for_python(
    python: str,
    requirements: list[str],
    dest: Path,
    scratch: Path,
    pip: Pip,
    build_sdists: BuildSdists | None,
    who: str,
) -> None:
    """Download wheels for `requirements` and everything they need on `python` into `dest`,
    building those that ship only as source inside the target (via `build_sdists`)."""
    if not requirements:
        return
    built = scratch / "built-wheels"
    built.mkdir(parents=True, exist_ok=True)
    wanted = list(requirements)
    tried_sdists: set[str] = set()
    for _ in range(MAX_ROUNDS):
        try:
            pip(["download", "--only-binary=:all:", *target_flags(python), "--find-links", str(built),
                 "-d", str(dest), *wanted])
        except subprocess.CalledProcessError as exc:
            missing = _missing_wheel(exc.stderr or "")
            if missing is None or missing in tried_sdists or build_sdists is None:
                raise
            tried_sdists.add(missing)
            _build_from_source(python, missing, dest, scratch, built, pip, build_sdists, who)
            continue
        unmet = unmet_requirements(dest, python, wanted)
        if not unmet:
            return
        wanted += unmet
    raise ImageBuildError(
        f"{who}: wheelhouse for Python {python}: requirements still unresolved after {MAX_ROUNDS} rounds "
        f"({', '.join(wanted[len(requirements):])[:200]}); pin them in the task's env_requirements"
    )


def _missing_wheel(stderr: str) -> str | None:
    found = _NO_MATCH.findall(stderr)
    return found[-1] if found else None


def _build_from_source(
    python: str, requirement: str, dest: Path, scratch: Path, built: Path, pip: Pip, build_sdists: BuildSdists,
    who: str,
) -> None:
    """`requirement` has no wheel for `python`: fetch its sdist, download its build requirements
    for `python` and build it in the target."""
    sdists = scratch / "sdists" / _safe(requirement)
    sdists.mkdir(parents=True, exist_ok=True)
    try:
        pip(["download", "--no-deps", "--no-binary", ":all:", "--python-version", python, "-d", str(sdists),
             requirement])
    except subprocess.CalledProcessError as exc:
        raise ImageBuildError(
            f"{who}: {requirement} has neither a wheel nor a source distribution for Python {python} "
            f"({telling_line(exc.stderr or '')}); pin a version that supports Python {python} in env_requirements"
        ) from None
    archives = sorted(sdists.iterdir())
    build_requirements: list[str] = []
    for archive in archives:
        build_requirements += sdist_build_requirements(archive)
    download_for_python(python, sorted(set(build_requirements)), dest, scratch / "nested", pip, build_sdists, who)
    build_sdists(archives, dest, built)
    if not any(built.glob("*.whl")):
        raise ImageBuildError(f"{who}: building {requirement} for Python {python} produced no wheel")


def sdist_build_requirements(archive: Path) -> list[str]:
    """[build-system].requires of a source distribution (setuptools and wheel when it names none)."""
    import tomllib

    default = ["setuptools>=40.8.0", "wheel"]
    text = _member_text(archive, "pyproject.toml")
    if text is None:
        return default
    try:
        system = tomllib.loads(text).get("build-system", {})
    except tomllib.TOMLDecodeError:
        return default
    return list(system.get("requires", default))


def _member_text(archive: Path, name: str) -> str | None:
    """The text of `<top>/name` inside an sdist (tar or zip), or None."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as handle:
            for member in handle.namelist():
                if member.count("/") == 1 and member.endswith("/" + name):
                    return handle.read(member).decode("utf-8", errors="replace")
        return None
    with tarfile.open(archive) as handle:
        for member in handle.getmembers():
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/" + name):
                extracted = handle.extractfile(member)
                return extracted.read().decode("utf-8", errors="replace") if extracted else None
    return None


def unmet_requirements(wheels: Path, python: str, wanted: list[str]) -> list[str]:
    """Requirements that the wheels in `wheels` declare for `python` (markers evaluated for it)
    and that no wheel there provides: pip, evaluating markers for the host, skipped them."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    env = marker_environment(python)
    present = {canonicalize_name(path.name.split("-")[0]) for path in wheels.glob("*.whl")}
    extras: dict[str, set[str]] = {}
    declared: list[tuple[str, Requirement]] = []
    for line in wanted:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        extras.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    for wheel in sorted(wheels.glob("*.whl")):
        owner = canonicalize_name(wheel.name.split("-")[0])
        for line in wheel_requires(wheel):
            req = Requirement(line)
            declared.append((owner, req))
            extras.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    unmet: list[str] = []
    for owner, req in declared:
        if req.marker is not None and not any(
            req.marker.evaluate({**env, "extra": extra}) for extra in {"", *extras.get(owner, set())}
        ):
            continue
        name = canonicalize_name(req.name)
        if name in present:
            continue
        req.marker = None
        text = str(req)
        if text not in unmet:
            unmet.append(text)
    return unmet


def wheel_requires(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta_name).decode("utf-8", errors="replace"))
    return list(metadata.get_all("Requires-Dist") or [])


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80]


def copy_wheels(source: Path, dest: Path) -> None:
    for wheel in source.glob("*.whl"):
        if not (dest / wheel.name).exists():
            shutil.copy2(wheel, dest / wheel.name)
