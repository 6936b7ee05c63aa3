"""`--images official`: SWE-bench's prebuilt instance image, with swerve's own tier on top.

No registry is reachable here, so a locally built stand-in carries the official name:
a repository in /testbed whose history runs past the base commit (a later "fix" commit
and a tag on it, as a full clone has) and a conda-like /opt/miniconda3/envs/testbed/bin.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from swerve.environments import images
from swerve.environments.official_images import ensure_official_image, official_image_name
from swerve.errors import ImageBuildError
from swerve.schema import Task

ROW = "swerve-test__official-standin-1"


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _context(repo: Path, dockerfile: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        archive.add(str(repo), arcname="testbed")
    buffer.seek(0)
    return buffer


@pytest.fixture(scope="module")
def standin(docker_client, tmp_path_factory):
    """(official name, base commit, later commit) of a stand-in official image."""
    repo = tmp_path_factory.mktemp("standin") / "testbed"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / ".gitignore").write_text("*.egg-info/\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    _git(repo, "commit", "-q", "-am", "the fix")
    later = _git(repo, "rev-parse", "HEAD")
    _git(repo, "tag", "v9.9", later)
    _git(repo, "reset", "-q", "--hard", base)
    (repo / "calc.egg-info").mkdir()
    (repo / "calc.egg-info" / "PKG-INFO").write_text("Name: calc\n")
    rootfs, _ = images._ensure_rootfs(docker_client)
    dockerfile = (
        f"FROM {rootfs}\nCOPY testbed/ /testbed/\n"
        "RUN mkdir -p /opt/miniconda3/envs/testbed/bin /opt/miniconda3/bin "
        "&& ln -s /usr/bin/python3 /opt/miniconda3/envs/testbed/bin/python "
        "&& useradd --uid 1000 --create-home someone\nWORKDIR /testbed\n"
    )
    name = official_image_name(ROW)
    docker_client.images.build(fileobj=_context(repo, dockerfile), custom_context=True, tag=name, rm=True,
                               network_mode="none")
    yield name, base, later
    for image in docker_client.images.list(filters={"label": f"swerve.task={ROW}"}):
        docker_client.images.remove(image.id, force=True)
    docker_client.images.remove(name, force=True)


def _run(client, image: str, script: str) -> str:
    output = client.containers.run(image, ["bash", "-c", script], remove=True, network_disabled=True,
                                   network_mode="none")
    return output.decode()


@pytest.mark.docker
def test_official_image_gets_swerves_tier_with_its_user_conda_python_and_a_cut_history(docker_client, standin):
    name, base, later = standin
    task = Task(instance_id=ROW, repo="swerve-test/official-standin", base_commit=base)
    ref = images.ensure_instance_image(task, client=docker_client, images="official", rebuild=True)
    assert ref.tag.startswith("swerve-official:") and ref.base_commit == base and ref.workdir == "/testbed"
    script = (
        "id -un; id -u; stat -c %U /testbed; command -v python; git rev-parse HEAD; git tag | wc -l; "
        f"git cat-file -e {later} 2>/dev/null && echo later-present || echo later-gone; "
        "git status --porcelain | wc -l; cat /opt/swerve/preserve.txt; echo $SWERVE_BASE_COMMIT; "
        "find .git/objects -type f ! -user root | wc -l; ls /opt/swerve/pristine; find / -xdev -perm /6000 -type f | wc -l"
    )
    lines = _run(docker_client, ref.tag, script).split()
    assert lines == ["swerve", "1000", "swerve", "/opt/miniconda3/envs/testbed/bin/python", base, "0", "later-gone",
                     "0", "calc.egg-info/", base, "0", "git-meta.tar", "git-objects.txt", "preserved.tar",
                     "preserved.txt", "0"]
    again = images.ensure_instance_image(task, client=docker_client, images="official")
    assert again.cached and again.id == ref.id
    labels = docker_client.images.get(ref.tag).labels
    assert labels["swerve.tier"] == "official" and docker_client.images.get(name).id in labels["swerve.origin"]


@pytest.mark.docker
def test_an_environment_runs_in_the_derived_tier(docker_client, standin, monkeypatch):
    from swerve.environments import open_environment

    name, base, _ = standin
    monkeypatch.setenv("SWERVE_IMAGES", "official")
    task = Task(instance_id=ROW, repo="swerve-test/official-standin", base_commit=base)
    with open_environment(task, backend="docker", run_id="test-official") as env:
        result = env.exec("python -c 'import calc; print(calc.add(2, 2))'; whoami")
        assert result.output.split() == ["0", "swerve"]
        env.write_file("calc.py", "def add(a, b):\n    return a + b\n")
        assert "+    return a + b" in env.diff()
        assert env.info.image.startswith("swerve-official:")
        env.exec("touch stray.txt; rm -rf calc.egg-info")
        env.reset()
        assert env.diff() == ""
        assert env.exec("ls calc.egg-info; cat calc.py").output.split() == ["PKG-INFO", "def", "add(a,", "b):",
                                                                           "return", "a", "-", "b"]


@pytest.mark.docker
def test_an_official_image_at_another_commit_is_refused_naming_the_row(docker_client, standin):
    _, _, later = standin
    task = Task(instance_id=ROW, repo="swerve-test/official-standin", base_commit=later)
    with pytest.raises(ImageBuildError) as info:
        images.ensure_instance_image(task, client=docker_client, images="official")
    message = str(info.value)
    assert message.startswith(f"{ROW}: official image {official_image_name(ROW)} has /testbed at ")
    assert f"not the row's base commit {later[:12]}" in message and "\n" not in message


@pytest.mark.docker
def test_a_missing_official_image_that_cannot_be_pulled_says_how_to_preload_it(docker_client):
    name = official_image_name("swerve-test__never-published-1")
    with pytest.raises(ImageBuildError) as info:
        ensure_official_image(docker_client, name, who="swerve-test__never-published-1", timeout_s=120)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"swerve-test__never-published-1: official image {name} is not in the local Docker")
    assert "docker load -i image.tar" in message and "--images local" in message
