"""SWE-bench's official prebuilt instance images, with swerve's own tier on top.

`--images official` (or a row carrying `image`) runs a row in the image the
official harness publishes for it: `swebench/sweb.eval.x86_64.<instance id, "__"
written "_1776_">:latest` (namespace and tag configurable). It is used when the
local daemon has it (`docker load` preloads it), else pulled with a progress bar
and a timeout; a failed pull says how to preload it.

swerve never asks for a hand-made image: it derives a small tier from the
official one (tag `swerve-official:<hash>`, keyed by the official image's id)
that adds what its environments need, as swerve's own tiers have it: the
non-root user `swerve` (uid 1000) owning /testbed (the base's git object files
stay root's), the conda environment `testbed` first on PATH, the repository's
history cut to the base commit and its ancestors (no tag, branch or reflog that
reaches a later commit, such as the fix), no setuid bits, a read-only home, and
the record reset() restores from (/opt/swerve/pristine).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from swerve.errors import ImageBuildError
from swerve.schema import Task

log = logging.getLogger(__name__)

IMAGES_ENV = "SWERVE_IMAGES"
NAMESPACE_ENV = "SWERVE_OFFICIAL_NAMESPACE"
TAG_ENV = "SWERVE_OFFICIAL_TAG"
PULL_TIMEOUT_ENV = "SWERVE_PULL_TIMEOUT"
DEFAULT_NAMESPACE = "swebench"
DEFAULT_TAG = "latest"
DEFAULT_PULL_TIMEOUT_S = 1800.0
IMAGE_MODES = ("auto", "local", "official")
CONDA_ENV = "/opt/miniconda3/envs/testbed"
OFFICIAL_WORKDIR = "/testbed"
PRESERVE_FILE = "/opt/swerve/preserve.txt"
PRISTINE = "/opt/swerve/pristine"

Progress = Callable[[int, int], None]
"""progress(bytes done, bytes total) while an image is pulled."""


def images_mode(mode: str | None = None) -> str:
    """Where instance images come from: 'local' (built by swerve), 'official' (SWE-bench's
    prebuilt ones) or 'auto' (official for rows carrying `image`, local otherwise);
    `mode`, else $SWERVE_IMAGES, else auto."""
    chosen = (mode or os.environ.get(IMAGES_ENV, "") or "auto").strip().lower()
    if chosen not in IMAGE_MODES:
        raise ImageBuildError(f"images {chosen!r}: use one of {', '.join(IMAGE_MODES)} (--images / ${IMAGES_ENV})")
    return chosen


def uses_official_image(task: Task, mode: str | None = None) -> bool:
    chosen = images_mode(mode)
    return chosen == "official" or (chosen == "auto" and bool(task.image.strip()))


def official_image_name(instance_id: str, namespace: str | None = None, tag: str | None = None) -> str:
    """SWE-bench's name for an instance image: `NAMESPACE/sweb.eval.ARCH.ID:TAG`, lower case,
    "__" written "_1776_" when there is a namespace (registries refuse "__")."""
    namespace = (os.environ.get(NAMESPACE_ENV, DEFAULT_NAMESPACE) if namespace is None else namespace).strip()
    tag = (tag or os.environ.get(TAG_ENV, "") or DEFAULT_TAG).strip()
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    key = f"sweb.eval.{arch}.{instance_id.lower()}"
    if namespace:
        key = f"{namespace}/{key}".replace("__", "_1776_")
    return f"{key}:{tag}"


def official_image_for(task: Task, namespace: str | None = None, tag: str | None = None) -> str:
    """The row's own `image` when it carries one, else the official name derived from its id."""
    return task.image.strip() or official_image_name(task.instance_id, namespace, tag)


def with_images(tasks: list[Task], mode: str | None) -> list[Task]:
    """`tasks` as `--images MODE` wants them: under 'official' each names its official image
    in `image`, under 'local' none does, under 'auto' they are unchanged. The choice then
    travels with each task (to worker processes and Ray nodes)."""
    if mode is None:
        return tasks
    chosen = images_mode(mode)
    if chosen == "official":
        return [task.model_copy(update={"image": official_image_for(task)}) for task in tasks]
    if chosen == "local":
        return [task.model_copy(update={"image": ""}) if task.image else task for task in tasks]
    return tasks


def ensure_official_image(
    client: Any, name: str, *, who: str, timeout_s: float | None = None, progress: Progress | None = None
) -> str:
    """Id of image `name`: from the local daemon, else pulled (with progress and a timeout);
    ImageBuildError with the way to preload it when neither works."""
    found = _image_id(client, name)
    if found is not None:
        return found
    if timeout_s is None:
        timeout_s = float(os.environ.get(PULL_TIMEOUT_ENV, "") or DEFAULT_PULL_TIMEOUT_S)
    try:
        pull_image(client, name, timeout_s=timeout_s, progress=progress or _default_progress(name))
        if progress is None and sys.stderr.isatty():
            sys.stderr.write("\n")
    except Exception as exc:
        raise ImageBuildError(
            f"{who}: official image {name} is not in the local Docker daemon and could not be pulled "
            f"({_first_line(exc)}); preload it: where a registry is reachable run `docker pull {name}` and "
            f"`docker save {name} -o image.tar`, then here `docker load -i image.tar`; or let swerve build the "
            "row's environment itself (--images local)"
        ) from None
    found = _image_id(client, name)
    if found is None:
        raise ImageBuildError(f"{who}: pulling {name} finished but the daemon has no such image; pull it again")
    return found


def pull_image(client: Any, name: str, *, timeout_s: float, progress: Progress | None = None) -> None:
    """docker pull `name`, reporting bytes downloaded; TimeoutError after `timeout_s`."""
    repository, tag = _split_tag(name)
    outcome: dict[str, BaseException | None] = {"error": None}
    layers: dict[str, tuple[int, int]] = {}

    def pull() -> None:
        try:
            for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise RuntimeError(str(event["error"]).strip())
                detail = event.get("progressDetail") or {}
                if event.get("id") and detail.get("total") and event.get("status") == "Downloading":
                    layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
                    if progress is not None:
                        progress(sum(c for c, _ in layers.values()), sum(t for _, t in layers.values()))
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=pull, name=f"pull {name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"pull timed out after {timeout_s:.0f} s (raise ${PULL_TIMEOUT_ENV})")
    if outcome["error"] is not None:
        raise outcome["error"]


def _default_progress(name: str) -> Progress | None:
    """A progress line on stderr when it is a terminal; otherwise a log line per 10%."""
    marks = {"last": -1, "started": time.monotonic()}

    def report(done: int, total: int) -> None:
        share = int(100 * done / total) if total else 0
        if sys.stderr.isatty():
            width = 30
            filled = width * share // 100
            sys.stderr.write(f"\rpulling {name} [{'#' * filled}{'.' * (width - filled)}] {share:3d}% "
                             f"{done / 1e6:.0f}/{total / 1e6:.0f} MB")
            sys.stderr.flush()
        elif share // 10 != marks["last"]:
            marks["last"] = share // 10
            log.info("pulling %s: %d%% of %.0f MB", name, share, total / 1e6)

    return report


def derived_dockerfile(official: str, base_commit: str, workdir: str = OFFICIAL_WORKDIR) -> str:
    """swerve's tier on an official image (see the module's docstring). Fails the build if
    the repository is not at `base_commit`."""
    wd = json.dumps(workdir)
    expected = base_commit or "$(git rev-parse HEAD)"
    script = " && ".join(
        [
            "set -e",
            "command -v git >/dev/null || { echo 'the official image has no git' >&2; exit 1; }",
            f"cd {workdir}",
            "git config --system safe.directory '*'",
            f'head="$(git rev-parse HEAD)"; test "$head" = "{expected}" '
            f"|| {{ echo \"{workdir} is at $head, not the row's base commit {base_commit}\" >&2; exit 1; }}",
            'branch="$(git symbolic-ref -q --short HEAD || echo swerve-base)"',
            'git checkout -q -B "$branch"',
            "git for-each-ref --format='%(refname)' | grep -v \"^refs/heads/$branch$\" "
            "| while read -r ref; do git update-ref -d \"$ref\"; done",
            "git stash clear",
            "git reflog expire --expire=now --all",
            "git gc -q --prune=now",
            "git config gc.auto 0 && git config core.logAllRefUpdates false",
            "git update-ref ORIG_HEAD HEAD && rm -rf .git/logs",
            "if getent passwd 1000 >/dev/null && [ \"$(getent passwd 1000 | cut -d: -f1)\" != swerve ]; then "
            "userdel \"$(getent passwd 1000 | cut -d: -f1)\" || true; fi",
            "getent passwd swerve >/dev/null || useradd --create-home --uid 1000 --shell /bin/bash swerve",
            "chown -R root:root /home/swerve && chmod 755 /home/swerve",
            "rm -rf /var/tmp && ln -s /tmp /var/tmp && if [ -d /run/lock ]; then chmod 755 /run/lock; fi",
            "find / -xdev -perm /6000 -type f -exec chmod ug-s {} +",
            "git ls-files --others --exclude-standard --directory | sed 's|^|/|' >> .git/info/exclude",
            f"find {workdir} \\( -path {workdir}/.git/objects/'*' -type f \\) -o -exec chown -h 1000:1000 {{}} +",
            f"mkdir -p {PRISTINE}",
            f"git ls-files --others --ignored --exclude-standard --directory > {PRESERVE_FILE}",
            f"tar -C {workdir} -cf {PRISTINE}/git-meta.tar --exclude=.git/objects --exclude=.git/index "
            "--exclude=.git/logs .git",
            f"find .git/objects -type f | LC_ALL=C sort > {PRISTINE}/git-objects.txt",
            f"sed 's|/$||' {PRESERVE_FILE} > {PRISTINE}/preserved.txt",
            f"tar -C {workdir} -cf {PRISTINE}/preserved.tar --verbatim-files-from -T {PRISTINE}/preserved.txt",
            "rm -rf /root/.cache /tmp/*",
        ]
    )
    return f"""FROM {official}
USER root
RUN ["bash", "-c", {json.dumps(script)}]
ENV PATH={CONDA_ENV}/bin:/opt/miniconda3/bin:$PATH CONDA_DEFAULT_ENV=testbed CONDA_PREFIX={CONDA_ENV} \\
    LANG=C.UTF-8 LC_ALL=C.UTF-8 SWERVE_BASE_COMMIT={base_commit} SWERVE_WORKDIR={wd} SWERVE_PRISTINE={PRISTINE}
USER swerve
WORKDIR {wd}
"""


def _split_tag(name: str) -> tuple[str, str]:
    last = name.rsplit("/", 1)[-1]
    if ":" in last and "@" not in last:
        repository, _, tag = name.rpartition(":")
        return repository, tag
    return name, DEFAULT_TAG


def _image_id(client: Any, name: str) -> str | None:
    import docker

    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
    return text[0][:240] if text else type(exc).__name__
