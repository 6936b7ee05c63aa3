"""`swerve env prune` and `swerve images prune` from the command line, on the real daemon.
Every container and image here is created by the test and carries its own run id: the
commands are always restricted to it (--run-id, --label), so nothing else on the daemon is touched."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid

import pytest
from typer.testing import CliRunner

from swerve.cli import app
from swerve.environments.docker import LABEL_HOST, LABEL_PIDNS, owner_labels

pytestmark = pytest.mark.docker

TEST_LABEL = "swerve.test_run"


def _tiny_image(client, repository: str, tag: str, labels: dict[str, str]) -> str:
    """An image with one empty layer (nothing pulled or built), carrying `labels`."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo("marker")
        archive.addfile(info, io.BytesIO(b""))
    changes = [f'LABEL {key}="{value}"' for key, value in labels.items()]
    client.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag, changes=changes)
    return f"{repository}:{tag}"


def _tags(client, run: str) -> set[str]:
    return {tag for image in client.images.list(filters={"label": f"{TEST_LABEL}={run}"}) for tag in image.tags}


@pytest.fixture()
def own_images(docker_client):
    """Removes, whatever happens, every image this test labelled."""
    runs: list[str] = []
    yield runs
    for run in runs:
        for tag in _tags(docker_client, run):
            try:
                docker_client.images.remove(tag, force=True)
            except Exception:
                pass


@pytest.fixture()
def own_containers(docker_client):
    """Removes, whatever happens, every container this test labelled."""
    runs: list[str] = []
    yield runs
    for run in runs:
        for container in docker_client.containers.list(all=True, filters={"label": f"swerve.run={run}"}):
            container.remove(force=True)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_images_prune_removes_only_the_labelled_images(docker_client, own_images):
    run, other = f"h13-{uuid.uuid4().hex[:12]}", f"h13-{uuid.uuid4().hex[:12]}"
    own_images.extend([run, other])
    instance = _tiny_image(docker_client, "swerve-test-instance", run, {"swerve.tier": "instance", TEST_LABEL: run})
    env = _tiny_image(docker_client, "swerve-test-env", run, {"swerve.tier": "env", TEST_LABEL: run})
    bystander = _tiny_image(docker_client, "swerve-test-instance", other, {"swerve.tier": "instance", TEST_LABEL: other})

    result = CliRunner().invoke(app, ["images", "prune", "--label", f"{TEST_LABEL}={run}"])
    assert result.exit_code == 0, result.output
    assert f"removed {instance}" in result.output
    assert "1 image(s) removed" in result.output
    assert _tags(docker_client, run) == {env}  # --all was not given: the env tier stays
    assert _tags(docker_client, other) == {bystander}

    result = CliRunner().invoke(app, ["images", "prune", "--all", "--label", f"{TEST_LABEL}={run}"])
    assert result.exit_code == 0, result.output
    assert f"removed {env}" in result.output
    assert _tags(docker_client, run) == set()
    assert _tags(docker_client, other) == {bystander}


def test_images_prune_label_without_value_is_one_error_line():
    result = CliRunner().invoke(app, ["images", "prune", "--label", "novalue"])
    assert result.exit_code == 2
    assert "--label 'novalue': write KEY=VALUE" in result.output
    assert "Traceback" not in result.output


def test_env_prune_removes_orphans_of_its_run_then_all_with_all(docker_client, own_images, own_containers):
    run, other = f"h13-{uuid.uuid4().hex[:12]}", f"h13-{uuid.uuid4().hex[:12]}"
    own_images.append(run)
    own_containers.extend([run, other])
    image = _tiny_image(docker_client, "swerve-test-instance", run, {"swerve.tier": "instance", TEST_LABEL: run})

    def container(run_id: str, owner: int, name: str, **replaced: str):
        labels = {"swerve.run": run_id, "swerve.task": "t", **owner_labels(owner), **replaced}
        return docker_client.containers.create(image, command=["/marker"], name=f"{run_id}-{name}",
                                               labels={k: v for k, v in labels.items() if v is not None})

    dead = _dead_pid()
    orphan = container(run, dead, "orphan")
    alive = container(run, os.getpid(), "alive")
    elsewhere = container(run, dead, "other-host", **{LABEL_HOST: "another-host/0123"})
    other_namespace = container(run, dead, "other-pidns", **{LABEL_PIDNS: "pid:[1]"})
    older = container(run, dead, "no-host-labels", **{LABEL_HOST: None, LABEL_PIDNS: None})
    bystander = container(other, dead, "bystander")  # an orphan too, but of another run

    def names() -> set[str]:
        return {c.name for c in docker_client.containers.list(all=True, filters={"label": "swerve.run"})}

    result = CliRunner().invoke(app, ["env", "prune", "--run-id", run])
    assert result.exit_code == 0, result.output
    assert f"removed 1 container(s): {orphan.name}" in result.output
    kept = {alive.name, elsewhere.name, other_namespace.name, older.name, bystander.name}
    assert kept <= names() and orphan.name not in names()

    result = CliRunner().invoke(app, ["env", "prune", "--run-id", run, "--all"])
    assert result.exit_code == 0, result.output
    assert "removed 4 container(s)" in result.output
    assert names() & kept == {bystander.name}
