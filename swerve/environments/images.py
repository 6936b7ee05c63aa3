"""Tiered, content-hashed Docker images: base -> environment -> instance.

- base: a user-named image, or Debian bootstrapped with debootstrap from the
  mirror that the host's apt sources name, imported with `docker import`; on top,
  a non-root user `swerve` (uid 1000) and /opt/swerve.
- environment: the repository's dependencies and test requirements installed into
  /opt/venv from a wheelhouse built on the host (no network inside).
- instance: the prepared repository at its base commit in the task's workdir,
  owned by `swerve`, installed in editable mode.

Each tag is `swerve-<tier>:<hash of its inputs>`, so building again with the same
inputs finds the image and reuses it. Builds run with networking off.

A task that names its Python (`python: "3.9"`, as SWE-bench rows do) gets the
Debian suite that ships that Python (PYTHON_SUITES) as its rootfs and base, and a
wheelhouse built for that Python; a task with the default `python` ("3") keeps
the host's suite and the host's Python.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swerve.environments.official_images import (
    derived_dockerfile,
    ensure_official_image,
    official_image_for,
    uses_official_image,
)
from swerve.environments.sources import PreparedRepo, prepare_repo
from swerve.environments.wheelhouse import (
    build_failure,
    build_wheelhouse,
    host_python,
    read_manifest,
    scm_version_env,
)
from swerve.errors import ImageBuildError, TaskFormatError
from swerve.fileio import file_lock
from swerve.paths import cache_dir
from swerve.schema import Task

log = logging.getLogger(__name__)

IMAGES_FORMAT = "2"
TIERS = ("rootfs", "base", "env", "instance", "official")
BOOTSTRAP_PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "patch", "ca-certificates", "procps")
WHEELS_IN_IMAGE = "/opt/swerve/wheels"
VENV = "/opt/venv"
PRESERVE_FILE = "/opt/swerve/preserve.txt"
PRISTINE = "/opt/swerve/pristine"
BASE_IMAGE_ENV = "SWERVE_BASE_IMAGE"
SALT_ENV = "SWERVE_IMAGE_SALT"
PYTHON_SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
"""The Debian suite whose python3 is each Python version (what debootstrap can give)."""


@dataclass(frozen=True)
class ImageRef:
    """A built instance image and what a container made from it starts with."""

    tag: str
    id: str
    base_commit: str
    workdir: str
    cached: bool


def docker_client(client: Any = None) -> Any:
    """The given client, or swerve's shared one (see `docker.docker_client`)."""
    if client is not None:
        return client
    from swerve.environments.docker import docker_client as shared_client

    return shared_client()


# ---------------------------------------------------------------- base tier


def ensure_base_image(client: Any = None, base_image: str | None = None, suite: str | None = None) -> str:
    """Tag of the base image: `base_image` (or $SWERVE_BASE_IMAGE) with swerve's user on
    top, else a Debian (`suite`, default the host's) bootstrapped from the host's apt mirror."""
    return _ensure_base(docker_client(client), base_image, suite)[0]


def wanted_python(task: Task) -> str:
    """The X.Y the task asks for, or "" when any Python 3 will do (the host's path)."""
    text = task.python.strip()
    if text in ("", "3"):
        return ""
    parts = text.split(".")
    if len(parts) < 2 or parts[0] != "3" or not parts[1].isdigit():
        raise TaskFormatError(
            f"{task.instance_id}: python {text!r} is not a Python version like 3.9; fix the task's `python`"
        )
    return f"3.{int(parts[1])}"


def suite_for_python(python: str, instance_id: str) -> str:
    """The Debian suite shipping `python`; a TaskFormatError (bad input, not retried) naming
    the alternatives if none does."""
    suite = PYTHON_SUITES.get(python)
    if suite is None:
        shipped = ", ".join(f"{version} ({name})" for version, name in PYTHON_SUITES.items())
        raise TaskFormatError(
            f"{instance_id}: no Debian suite ships Python {python} (swerve bootstraps {shipped}); run this row in "
            f"its official image (--images official) or name a base image with Python {python} (--base-image)"
        )
    return suite


def _ensure_base(client: Any, base_image: str | None, suite: str | None = None) -> tuple[str, str]:
    """(tag, id) of the base image (see `ensure_base_image`)."""
    named = base_image or os.environ.get(BASE_IMAGE_ENV, "").strip() or None
    if named:
        parent_id = _named_base(client, named)
        parent, origin = named, f"image {named}@{parent_id}"
    else:
        parent, origin = _ensure_rootfs(client, suite)
    dockerfile = _base_dockerfile(parent)
    inputs = _hash(IMAGES_FORMAT, "base", origin, dockerfile)
    tag = f"swerve-base:{inputs[:12]}"
    labels = {"swerve.tier": "base", "swerve.inputs": inputs, "swerve.origin": origin}
    image_id, _ = _ensure_tier(
        client, tag, lambda: _build(client, tag, dockerfile, {}, labels=labels, who="base image", tier="base")
    )
    return tag, image_id


def _named_base(client: Any, name: str) -> str:
    image_id = _image_id(client, name)
    if image_id is not None:
        return image_id
    try:
        return client.images.pull(name).id
    except Exception as exc:
        raise ImageBuildError(
            f"base image {name!r} is not present and could not be pulled ({_first_line(exc)}); "
            "load it with `docker load` or name another with --base-image"
        ) from None


def _base_dockerfile(parent: str) -> str:
    checks = (
        "command -v python3 git patch useradd >/dev/null "
        "|| { echo 'the base image needs python3, git, patch and useradd' >&2; exit 1; }"
    )
    return f"""FROM {parent}
RUN {checks} \\
 && python3 -c 'import venv, ensurepip' \\
 && if getent passwd 1000 >/dev/null; then userdel -r "$(getent passwd 1000 | cut -d: -f1)" || true; fi \\
 && useradd --create-home --uid 1000 --shell /bin/bash swerve \\
 && chown -R root:root /home/swerve && chmod 755 /home/swerve \\
 && rm -rf /var/tmp && ln -s /tmp /var/tmp && if [ -d /run/lock ]; then chmod 755 /run/lock; fi \\
 && find / -xdev -perm /6000 -type f -exec chmod ug-s {{}} + \\
 && mkdir -p /opt/swerve \\
 && python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' > /opt/swerve/python-version
ENV LANG=C.UTF-8 LC_ALL=C.UTF-8
CMD ["/bin/bash"]
"""


def debian_source(sources_dir: Path = Path("/etc/apt")) -> tuple[str, str]:
    """(mirror URI, suite) of the host's main Debian apt source; never a hard-coded host.

    $SWERVE_DEBIAN_MIRROR and $SWERVE_DEBIAN_SUITE override what the files say."""
    mirror = os.environ.get("SWERVE_DEBIAN_MIRROR", "").strip()
    suite = os.environ.get("SWERVE_DEBIAN_SUITE", "").strip()
    if mirror and suite:
        return mirror, suite
    for uri, found_suite in _apt_entries(sources_dir):
        if "-" in found_suite or "/" in found_suite:
            continue
        return mirror or uri, suite or found_suite
    raise ImageBuildError(
        f"no Debian mirror found in the host's apt sources under {sources_dir}; "
        f"name a base image with --base-image / ${BASE_IMAGE_ENV}, or set SWERVE_DEBIAN_MIRROR and SWERVE_DEBIAN_SUITE"
    )


def _apt_entries(sources_dir: Path) -> Iterator[tuple[str, str]]:
    deb822 = sorted((sources_dir / "sources.list.d").glob("*.sources")) if (sources_dir / "sources.list.d").is_dir() else []
    for path in deb822:
        for stanza in path.read_text(errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    yield uri, suite
    lists = [sources_dir / "sources.list"]
    if (sources_dir / "sources.list.d").is_dir():
        lists += sorted((sources_dir / "sources.list.d").glob("*.list"))
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                yield words[0], words[1]


def _ensure_rootfs(client: Any, suite: str | None = None) -> tuple[str, str]:
    mirror, host_suite = debian_source()
    suite = suite or host_suite
    packages = ",".join(BOOTSTRAP_PACKAGES)
    origin = f"debootstrap minbase {suite} {mirror} {packages} {platform.machine()}"
    inputs = _hash(IMAGES_FORMAT, "rootfs", origin)
    tag = f"swerve-rootfs:{inputs[:12]}"
    _ensure_tier(client, tag, lambda: _bootstrap_and_import(client, tag, inputs, mirror, suite, packages))
    return tag, origin


def _bootstrap_and_import(client: Any, tag: str, inputs: str, mirror: str, suite: str, packages: str) -> str:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "cannot bootstrap a base image: debootstrap is not installed; "
            f"`apt-get install debootstrap`, or name a base image with --base-image / ${BASE_IMAGE_ENV}"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "cannot bootstrap a base image: debootstrap needs root; run `swerve images build` as root once, "
            f"or name a base image with --base-image / ${BASE_IMAGE_ENV}"
        )
    work = Path(tempfile.mkdtemp(prefix="rootfs.", dir=cache_dir("build")))
    rootfs = work / "rootfs"
    command = ["debootstrap", "--variant=minbase", f"--include={packages}", suite, str(rootfs), mirror]
    try:
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise build_failure("base image", "rootfs image", " ".join(command) + "\n" + proc.stdout + proc.stderr)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        archive = work / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        repository, _, version = tag.partition(":")
        changes = [f"LABEL swerve.tier=rootfs swerve.inputs={inputs}", 'CMD ["/bin/bash"]']
        with open(archive, "rb") as handle:
            client.api.import_image_from_data(handle, repository=repository, tag=version, changes=changes)
    except subprocess.CalledProcessError as exc:
        raise build_failure("base image", "rootfs image", f"{exc}") from None
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
    image_id = _image_id(client, tag)
    if image_id is None:
        raise ImageBuildError(f"base image: `docker import` did not create {tag}; check the daemon's log")
    return image_id


def container_python(client: Any, image: str, image_id: str = "") -> str:
    """major.minor of the image's python3 (remembered per image id)."""
    image_id = image_id or _image_id(client, image) or image
    memo = cache_dir("images") / f"python-{image_id.replace(':', '_').replace('/', '_')}.txt"
    if memo.is_file():
        return memo.read_text().strip()
    output = client.containers.run(
        image, ["cat", "/opt/swerve/python-version"], remove=True, network_disabled=True, network_mode="none"
    )
    version = output.decode().strip()
    memo.write_text(version + "\n")
    return version


# ----------------------------------------------------------------- env tier


def ensure_env_image(task: Task, client: Any = None, base_image: str | None = None) -> str:
    """Tag of the environment image holding the task's dependencies (not the project)."""
    return _ensure_env(task, docker_client(client), base_image)[0]


def _ensure_env(task: Task, client: Any, base_image: str | None) -> tuple[str, str, PreparedRepo, dict]:
    """(tag, id) of the environment image, the prepared repository and the wheelhouse's manifest."""
    python = wanted_python(task)
    if python:
        return _ensure_env_for_python(task, client, base_image, python)
    repo = prepare_repo(task)
    wheelhouse, requirements = build_wheelhouse(task, repo)
    base, base_id = _ensure_base(client, base_image)
    inside = container_python(client, base, base_id)
    if inside != host_python():
        raise ImageBuildError(
            f"{task.instance_id}: environment image: the host's Python {host_python()} builds the wheels but the "
            f"base image has Python {inside}; run swerve with Python {inside} or pick a base image with Python "
            f"{host_python()} (--base-image)"
        )
    manifest = read_manifest(wheelhouse)
    dockerfile = _env_dockerfile(base, bool(requirements))
    inputs = _hash(IMAGES_FORMAT, "env", base, base_id, manifest["content_hash"], json.dumps(requirements), dockerfile)
    tag = f"swerve-env:{inputs[:12]}"
    files = {"wheels": wheelhouse, "requirements.txt": "".join(f"{r}\n" for r in requirements).encode()}
    labels = {"swerve.tier": "env", "swerve.inputs": inputs, "swerve.repo": task.repo}
    image_id, _ = _ensure_tier(
        client, tag,
        lambda: _build(client, tag, dockerfile, files, labels=labels, who=task.instance_id, tier="environment"),
    )
    return tag, image_id, repo, manifest


def _ensure_env_for_python(
    task: Task, client: Any, base_image: str | None, python: str
) -> tuple[str, str, PreparedRepo, dict]:
    """The environment tier for a task naming its Python: the base of the suite shipping it
    (or the named base, which must have it) and a wheelhouse built for it."""
    named = base_image or os.environ.get(BASE_IMAGE_ENV, "").strip()
    suite = None if named else suite_for_python(python, task.instance_id)
    repo = prepare_repo(task)
    base, base_id = _ensure_base(client, base_image, suite)
    inside = container_python(client, base, base_id)
    if inside != python:
        raise ImageBuildError(
            f"{task.instance_id}: environment image: the task asks for Python {python} but the base image {base} "
            f"has Python {inside}; pick a base image with Python {python} (--base-image) or leave it out"
        )
    wheelhouse, requirements = build_wheelhouse(
        task, repo, python=python,
        build_sdists=lambda sdists, wheels, out: build_sdists_in_image(client, base, sdists, wheels, out),
    )
    manifest = read_manifest(wheelhouse)
    tooling = manifest.get("tooling", [])
    dockerfile = _env_dockerfile(base, bool(requirements), tooling)
    inputs = _hash(IMAGES_FORMAT, "env", base, base_id, manifest["content_hash"], json.dumps(requirements), dockerfile)
    tag = f"swerve-env:{inputs[:12]}"
    files = {"wheels": wheelhouse, "requirements.txt": "".join(f"{r}\n" for r in requirements).encode()}
    labels = {"swerve.tier": "env", "swerve.inputs": inputs, "swerve.repo": task.repo, "swerve.python": python}
    image_id, _ = _ensure_tier(
        client, tag,
        lambda: _build(client, tag, dockerfile, files, labels=labels, who=task.instance_id, tier="environment"),
    )
    return tag, image_id, repo, manifest


def build_sdists_in_image(client: Any, image: str, sdists: list[Path], wheels: Path, out: Path) -> None:
    """Build each source distribution into a wheel in `out` inside a container of `image`
    (networking off), its build requirements installed only from `wheels`."""
    script = (
        "set -e; python3 -m venv /tmp/builder; "
        "/tmp/builder/bin/pip install -q --no-index --find-links /in/wheels -U pip setuptools wheel || true; "
        "mkdir -p /out; for sdist in /in/sdists/*; do "
        "/tmp/builder/bin/pip wheel --no-deps --no-index --find-links /in/wheels -w /out \"$sdist\"; done"
    )
    with tempfile.TemporaryFile(dir=cache_dir("build")) as bundle:
        with tarfile.open(fileobj=bundle, mode="w") as archive:
            archive.add(str(wheels), arcname="in/wheels", filter=lambda info: info if not info.name.startswith(
                "in/wheels/.") else None)
            for sdist in sdists:
                archive.add(str(sdist), arcname=f"in/sdists/{sdist.name}")
        bundle.seek(0)
        container = client.containers.create(
            image, ["bash", "-c", script], network_disabled=True, network_mode="none",
            labels={"swerve.run": "sdist-build"},
        )
        try:
            container.put_archive("/", bundle.read())
            container.start()
            code = container.wait(timeout=1800)["StatusCode"]
            output = container.logs().decode("utf-8", errors="replace")
            if code != 0:
                names = ", ".join(s.name for s in sdists)
                raise build_failure(names, f"source build (Python in {image})", output)
            stream, _ = container.get_archive("/out")
            with tempfile.TemporaryFile(dir=cache_dir("build")) as result:
                for chunk in stream:
                    result.write(chunk)
                result.seek(0)
                with tarfile.open(fileobj=result) as archive:
                    for member in archive.getmembers():
                        if member.isfile() and member.name.endswith(".whl"):
                            extracted = archive.extractfile(member)
                            if extracted is not None:
                                (out / Path(member.name).name).write_bytes(extracted.read())
        finally:
            container.remove(force=True)


def _env_dockerfile(base: str, has_requirements: bool, tooling: list[str] | None = None) -> str:
    install = (
        f" && {VENV}/bin/pip install --no-index --find-links {WHEELS_IN_IMAGE} -r /opt/swerve/requirements.txt"
        if has_requirements
        else ""
    )
    if tooling:
        install = (
            f" && {VENV}/bin/pip install -q --no-index --find-links {WHEELS_IN_IMAGE} -U "
            + " ".join(shlex.quote(t) for t in tooling)
            + install
        )
    return f"""FROM {base}
COPY wheels/ {WHEELS_IN_IMAGE}/
COPY requirements.txt /opt/swerve/requirements.txt
RUN PIP_NO_CACHE_DIR=1 python3 -m venv {VENV}{install}
ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS={WHEELS_IN_IMAGE} \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
"""


# ------------------------------------------------------------ instance tier


def ensure_instance_image(
    task: Task, client: Any = None, base_image: str | None = None, rebuild: bool = False, images: str | None = None
) -> ImageRef:
    """The task's instance image: the repository at its base commit, installed, owned by
    `swerve`. Reused when an image with the same inputs exists (unless `rebuild`).
    With `images` 'official' (or $SWERVE_IMAGES, or a row carrying `image`), swerve's tier
    on SWE-bench's prebuilt image instead (see `official_images`)."""
    client = docker_client(client)
    if uses_official_image(task, images):
        return ensure_official_instance(task, client, rebuild=rebuild)
    env_tag, env_id, repo, manifest = _ensure_env(task, client, base_image)
    install_script = _install_script(task, repo, manifest.get("project", ""))
    dockerfile = _instance_dockerfile(env_tag, task.workdir, repo.base_commit, project_packages(repo.path))
    inputs = _hash(IMAGES_FORMAT, "instance", env_tag, env_id, task.instance_id, repo.base_commit, install_script,
                   dockerfile)
    tag = f"swerve-instance:{inputs[:12]}"
    labels = {
        "swerve.tier": "instance",
        "swerve.inputs": inputs,
        "swerve.task": task.instance_id,
        "swerve.repo": task.repo,
        "swerve.base_commit": repo.base_commit,
        "swerve.workdir": task.workdir,
    }
    files = {"repo": repo.path, "install.sh": install_script.encode()}
    image_id, cached = _ensure_tier(
        client,
        tag,
        lambda: _build(client, tag, dockerfile, files, labels=labels, who=task.instance_id, tier="instance",
                       nocache=rebuild),
        rebuild=rebuild,
    )
    return ImageRef(tag=tag, id=image_id, base_commit=repo.base_commit, workdir=task.workdir, cached=cached)


def ensure_official_instance(task: Task, client: Any = None, rebuild: bool = False) -> ImageRef:
    """swerve's tier on the row's official image (present locally, else pulled), keyed by
    the official image's id."""
    client = docker_client(client)
    official = official_image_for(task)
    official_id = ensure_official_image(client, official, who=task.instance_id)
    dockerfile = derived_dockerfile(official, task.base_commit, task.workdir)
    inputs = _hash(IMAGES_FORMAT, "official", official, official_id, task.instance_id, dockerfile)
    tag = f"swerve-official:{inputs[:12]}"
    labels = {
        "swerve.tier": "official",
        "swerve.inputs": inputs,
        "swerve.task": task.instance_id,
        "swerve.repo": task.repo,
        "swerve.base_commit": task.base_commit,
        "swerve.workdir": task.workdir,
        "swerve.origin": f"image {official}@{official_id}",
    }

    def derive() -> str:
        _check_official_head(client, official, task)
        return _build(client, tag, dockerfile, {}, labels=labels, who=task.instance_id, tier="official-derived",
                      nocache=rebuild)

    image_id, cached = _ensure_tier(client, tag, derive, rebuild=rebuild)
    base_commit = task.base_commit or _image_env(client, tag, "SWERVE_BASE_COMMIT")
    return ImageRef(tag=tag, id=image_id, base_commit=base_commit, workdir=task.workdir, cached=cached)


def _check_official_head(client: Any, official: str, task: Task) -> None:
    """One clear line when the official image's repository is not at the row's base commit."""
    if not task.base_commit:
        return
    output = client.containers.run(
        official, ["git", "-c", "safe.directory=*", "-C", task.workdir, "rev-parse", "HEAD"], remove=True,
        network_disabled=True, network_mode="none", user="root", entrypoint=[],
    )
    head = output.decode().strip()
    if head != task.base_commit and not head.startswith(task.base_commit):
        raise ImageBuildError(
            f"{task.instance_id}: official image {official} has {task.workdir} at {head[:12]}, not the row's "
            f"base commit {task.base_commit[:12]}; load the image made for this row (or name it in the row's `image`)"
        )


def _image_env(client: Any, tag: str, name: str) -> str:
    for item in client.images.get(tag).attrs.get("Config", {}).get("Env") or []:
        key, _, value = item.partition("=")
        if key == name:
            return value
    return ""


def _install_script(task: Task, repo: PreparedRepo, project: str) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(scm_version_env(repo, project).items()))
    command = task.install_cmd.strip() or f"pip install --no-index --find-links {WHEELS_IN_IMAGE} -e ."
    pre_install = "".join(f"{line}\n" for line in task.pre_install if line.strip())
    return f"set -e\n{exports}cd {shlex.quote(task.workdir)}\n{pre_install}{command}\n"


def _instance_dockerfile(env_tag: str, workdir: str, base_commit: str, packages: list[str] | None = None) -> str:
    """The repository installed by root (so /opt/venv stays root's and read-only to the agent),
    then handed to `swerve`, all but the base's git object files (root's, so the agent
    cannot rewrite them); what reset() restores is recorded under /opt/swerve/pristine;
    what could hold the original code (the wheelhouse, pip's wheels and caches, copies of
    the project vendored by other packages) is removed."""
    wd = json.dumps(workdir)
    vendored = " ".join(f"-name {shlex.quote(name)} -o -name {shlex.quote(name + '.py')} -o" for name in packages or [])
    drop_vendored = (
        f" \\\n && find / -xdev \\( -path /proc -o -path {wd} \\) -prune -o -path '*/_vendor/*' "
        f"\\( {vendored[:-3]} \\) -prune -exec rm -rf {{}} +"
        if vendored else ""
    )
    return f"""FROM {env_tag}
COPY repo/ {wd}
COPY install.sh /opt/swerve/install.sh
RUN git config --system safe.directory '*'
WORKDIR {wd}
RUN PIP_ROOT_USER_ACTION=ignore bash /opt/swerve/install.sh \\
 && git ls-files --others --exclude-standard --directory | sed 's|^|/|' >> .git/info/exclude \\
 && git config gc.auto 0 && git config core.logAllRefUpdates false \\
 && git update-ref ORIG_HEAD HEAD && rm -rf .git/logs \\
 && find {wd} \\( -path {wd}/.git/objects/'*' -type f \\) -o -exec chown -h 1000:1000 {{}} + \\
 && git ls-files --others --ignored --exclude-standard --directory > {PRESERVE_FILE} \\
 && mkdir -p {PRISTINE} \\
 && tar -C {wd} -cf {PRISTINE}/git-meta.tar --exclude=.git/objects --exclude=.git/index --exclude=.git/logs .git \\
 && (cd {wd} && find .git/objects -type f | LC_ALL=C sort > {PRISTINE}/git-objects.txt) \\
 && sed 's|/$||' {PRESERVE_FILE} > {PRISTINE}/preserved.txt \\
 && tar -C {wd} -cf {PRISTINE}/preserved.tar --verbatim-files-from -T {PRISTINE}/preserved.txt \\
 && rm -rf {WHEELS_IN_IMAGE} /usr/share/python-wheels /root/.cache /tmp/* /var/cache/apt/archives/*.deb{drop_vendored}
USER swerve
ENV SWERVE_BASE_COMMIT={base_commit} SWERVE_WORKDIR={wd} SWERVE_PRISTINE={PRISTINE}
"""


def project_packages(repo: Path) -> list[str]:
    """The project's top-level import names: packages and modules at the repository's
    root or under src/ (setup.py, conftest.py and the like excluded)."""
    skip = {"setup", "conftest", "noxfile", "tasks", "docs", "tests", "test", "testing", "examples", "benchmarks"}
    names = set()
    for folder in (repo, repo / "src"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            stem = entry.name[:-3] if entry.name.endswith(".py") and entry.is_file() else entry.name
            if stem in skip or not stem.isidentifier():
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file() or entry.is_file() and entry.name.endswith(".py"):
                names.add(stem)
    return sorted(names)


# ---------------------------------------------------------------- listing


def list_images(client: Any = None, labels: dict[str, str] | None = None) -> list[dict]:
    """Every swerve image: tag, id, tier, task, base commit, size and creation time; with
    `labels`, only images carrying every one of those labels with that value."""
    client = docker_client(client)
    wanted = dict(labels or {})
    rows = []
    selector = ["swerve.tier", *(f"{key}={value}" for key, value in wanted.items())]
    for image in client.images.list(filters={"label": selector}):
        labels = image.labels or {}
        if any(labels.get(key) != value for key, value in wanted.items()):
            continue
        for tag in image.tags or [image.short_id]:
            rows.append(
                {
                    "tag": tag,
                    "id": image.id,
                    "tier": labels.get("swerve.tier", ""),
                    "task": labels.get("swerve.task", ""),
                    "repo": labels.get("swerve.repo", ""),
                    "base_commit": labels.get("swerve.base_commit", ""),
                    "size_mb": round(image.attrs.get("Size", 0) / 1e6, 1),
                    "created": image.attrs.get("Created", ""),
                }
            )
    order = {tier: index for index, tier in enumerate(TIERS)}
    rows.sort(key=lambda row: (order.get(row["tier"], 9), row["tag"]))
    return rows


def prune_images(client: Any = None, all: bool = False, labels: dict[str, str] | None = None) -> list[str]:
    """Remove instance images and swerve's tiers on official images (with `all`, every
    swerve image, base included; never the official images themselves); with `labels`,
    only images carrying all of them. Images still used by a container are kept and
    logged; returns the removed tags."""
    client = docker_client(client)
    doomed = [row for row in list_images(client, labels) if all or row["tier"] in ("instance", "official")]
    doomed.sort(key=lambda row: -TIERS.index(row["tier"]) if row["tier"] in TIERS else 0)
    removed = []
    for row in doomed:
        try:
            client.images.remove(row["tag"])
            removed.append(row["tag"])
        except Exception as exc:
            log.warning("kept %s: %s", row["tag"], _first_line(exc))
    return removed


# ---------------------------------------------------------------- helpers


def _hash(*parts: str) -> str:
    """The tier's content hash; $SWERVE_IMAGE_SALT, when set, is mixed into every tier above
    the Debian bootstrap (benchmarks use it to time cold builds without removing images)."""
    salt = os.environ.get(SALT_ENV, "")
    if salt and parts[1:2] != ("rootfs",):
        parts = (*parts, "salt", salt)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _image_id(client: Any, tag: str) -> str | None:
    import docker

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def _ensure_tier(client: Any, tag: str, build: Callable[[], str], rebuild: bool = False) -> tuple[str, bool]:
    """(image id, whether it was already built): `build()` runs unless `tag` exists
    (or `rebuild`). One builder per tag across processes; the next finds it built."""
    with file_lock(cache_dir("locks") / (tag.replace(":", "-").replace("/", "_") + ".lock")):
        image_id = None if rebuild else _image_id(client, tag)
        if image_id is not None:
            return image_id, True
        started = time.monotonic()
        log.info("building %s", tag, extra={"swerve_image": tag, "swerve_event": "start"})
        image_id = build()
        seconds = time.monotonic() - started
        log.info("built %s in %.1f s", tag, seconds, extra={"swerve_image": tag, "swerve_event": "done",
                                                            "swerve_seconds": seconds})
        return image_id, False


def _build(
    client: Any,
    tag: str,
    dockerfile: str,
    files: dict[str, Path | bytes],
    *,
    labels: dict[str, str],
    who: str,
    tier: str,
    nocache: bool = False,
) -> str:
    """docker build with networking off from a context holding `files`; a failure raises
    ImageBuildError naming `who` and the tier, with the log kept in a file."""
    lines: list[str] = [f"# docker build -t {tag}\n", dockerfile, "\n"]
    with tempfile.TemporaryFile(dir=cache_dir("build")) as context:
        _write_context(context, dockerfile, files)
        context.seek(0)
        error = ""
        try:
            for chunk in client.api.build(
                fileobj=context, custom_context=True, tag=tag, labels=labels, rm=True, forcerm=True,
                network_mode="none", decode=True, nocache=nocache, pull=False,
            ):
                if "stream" in chunk:
                    lines.append(chunk["stream"])
                if "error" in chunk:
                    error = chunk["error"].strip()
                    lines.append(error + "\n")
        except Exception as exc:
            error = f"docker build failed: {_first_line(exc)}"
            lines.append(error + "\n")
    if error:
        raise build_failure(who, f"{tier} image", "".join(lines), error)
    image_id = _image_id(client, tag)
    if image_id is None:
        raise build_failure(who, f"{tier} image", "".join(lines), f"the build finished without tagging {tag}")
    return image_id


def _write_context(handle: Any, dockerfile: str, files: dict[str, Path | bytes]) -> None:
    import io

    with tarfile.open(fileobj=handle, mode="w") as archive:
        for name, content in {"Dockerfile": dockerfile.encode(), **files}.items():
            if isinstance(content, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(content))
            else:
                archive.add(str(content), arcname=name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
