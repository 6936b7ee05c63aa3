"""No answer in the environment: every bundled task's instance image is scanned for
the gold patch's added lines and the hidden tests' lines (every file, every git
object of every repository, every archive member) and none is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from swerve.environments.answer_scan import answer_needles, scan_image
from swerve.environments.images import ensure_base_image, ensure_env_image, ensure_instance_image, project_packages
from swerve.environments.sources import prepare_repo
from swerve.harness.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[2]
TASK_FILES = sorted((ROOT / "examples").glob("*.jsonl")) + [ROOT / "tests" / "fixtures" / "toolz_tasks.jsonl"]

pytestmark = pytest.mark.docker


def _bundled_tasks():
    seen, tasks = set(), []
    for path in TASK_FILES:
        for task in load_tasks(path):
            key = (task.repo_source, task.base_patch, task.patch, task.test_patch)
            if key not in seen:
                seen.add(key)
                tasks.append(task)
    return tasks


def test_the_scanner_sees_plain_files_and_compressed_git_objects(docker_client, toolz_image, toolz_task):
    repo = prepare_repo(toolz_task)
    line = next(
        text.strip() for text in (repo.path / "toolz" / "itertoolz.py").read_text().splitlines()
        if len(text.strip()) > 40
    )
    result = scan_image(docker_client, toolz_image.tag, [line])
    places = {(leak.where, leak.path) for leak in result.leaks}
    assert ("file", f"{toolz_image.workdir}/toolz/itertoolz.py") in places
    assert ("git objects", f"{toolz_image.workdir}/.git") in places
    assert result.files > 1000


def _inside_a_copy_of(path: str, packages: list[str]) -> bool:
    parts = set(path.replace("!", "/").split("/"))
    return any(name in parts or f"{name}.py" in parts for name in packages)


def test_no_bundled_task_image_holds_its_gold_patch_or_hidden_tests(docker_client):
    tasks = _bundled_tasks()
    assert len(tasks) >= 36
    needles, packages, envs = {}, {}, {}
    for task in tasks:
        repo = prepare_repo(task)
        needles[task.instance_id] = answer_needles(task.patch, task.test_patch, repo.path)
        assert needles[task.instance_id], f"{task.instance_id}: nothing to look for"
        packages[task.instance_id] = project_packages(repo.path)
        envs.setdefault(ensure_env_image(task, client=docker_client), []).append(task)
    # Lines that the task-independent base image (Debian, the standard library) or the
    # environment image (the dependencies, built before the repository is copied in)
    # already has are idioms, not answers -- unless they sit in a copy of the project.
    generic: dict[str, set[str]] = {}
    for image, group in [(ensure_base_image(docker_client), tasks), *envs.items()]:
        wanted = sorted({line for task in group for line in needles[task.instance_id]})
        leaks = scan_image(docker_client, image, wanted).leaks
        for task in group:
            mine = set(needles[task.instance_id])
            generic.setdefault(task.instance_id, set()).update(
                line for leak in leaks if not _inside_a_copy_of(leak.path, packages[task.instance_id])
                for line in leak.lines if line in mine
            )
    problems = []
    for group in envs.values():
        # The environment image's wheelhouse may hold the project itself (click's dev
        # requirements pull an older click); the instance image, the agent's, has no wheelhouse.
        instance = ensure_instance_image(group[0], client=docker_client)
        listing = docker_client.containers.run(
            instance.tag, ["sh", "-c", "ls -d /opt/swerve/wheels /usr/share/python-wheels /root/.cache 2>/dev/null; true"],
            remove=True, network_disabled=True, network_mode="none", user="root",
        ).decode()
        if listing.strip():
            problems.append(f"{group[0].instance_id}: the instance image still has {listing.split()}")
    for task in tasks:
        image = ensure_instance_image(task, client=docker_client)
        for leak in scan_image(docker_client, image.tag, needles[task.instance_id]).leaks:
            found = [line for line in leak.lines if line not in generic[task.instance_id]]
            if found:
                problems.append(f"{task.instance_id}: {leak.where} {leak.path}: {found[:3]}")
    assert not problems, "\n".join(problems[:40])
