"""Tiered images built for a real PyPI project (toolz), its tests run inside, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from swerve.environments.images import debian_source, ensure_instance_image, list_images
from swerve.errors import ImageBuildError
from swerve.schema import Task

TOOLZ = Task(instance_id="toolz-images-test", repo="pytoolz/toolz", repo_source="pypi:toolz==0.12.1")


def run_in(client, image: str, command: str) -> tuple[int, str]:
    """Run `command` in a fresh container (network off, user swerve); exit code and output."""
    container = client.containers.create(
        image, ["bash", "-c", command], user="swerve", network_mode="none", network_disabled=True,
        labels={"swerve.run": "test-images"},
    )
    try:
        container.start()
        code = container.wait(timeout=300)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def toolz_ref(docker_client):
    return ensure_instance_image(TOOLZ, client=docker_client)


@pytest.mark.docker
def test_toolz_tests_pass_inside_the_instance_image_without_network(docker_client, toolz_ref):
    code, output = run_in(docker_client, toolz_ref.tag, "python -m pytest -x -q -p no:cacheprovider toolz/tests/test_itertoolz.py")
    assert code == 0, output
    assert " passed" in output


@pytest.mark.docker
def test_same_inputs_are_a_cache_hit(docker_client, toolz_ref):
    again = ensure_instance_image(TOOLZ, client=docker_client)
    assert again.cached is True
    assert again.id == toolz_ref.id and again.tag == toolz_ref.tag


@pytest.mark.docker
def test_history_holds_only_the_base_commit_and_the_repo_belongs_to_swerve(docker_client, toolz_ref):
    script = (
        "git log --format=%H; echo ---; git tag; git remote; git branch -a; echo ---; "
        "git status --porcelain; echo ---; id -un; stat -c %U /testbed; pwd; echo $SWERVE_BASE_COMMIT; "
        "python -c 'import toolz; print(toolz.__file__)'"
    )
    code, output = run_in(docker_client, toolz_ref.tag, script)
    assert code == 0, output
    log, refs, status, facts = output.split("---\n")
    assert log.split() == [toolz_ref.base_commit]
    assert refs.split() == ["*", "main"]
    assert status.strip() == ""
    assert facts.split() == ["swerve", "swerve", "/testbed", toolz_ref.base_commit, "/testbed/toolz/__init__.py"]


@pytest.mark.docker
def test_tiers_are_tagged_and_labelled(docker_client, toolz_ref):
    rows = list_images(docker_client)
    tiers = {row["tier"] for row in rows}
    assert {"base", "env", "instance"} <= tiers
    mine = [row for row in rows if row["tag"] == toolz_ref.tag]
    assert mine and mine[0]["task"] == TOOLZ.instance_id and mine[0]["base_commit"] == toolz_ref.base_commit
    assert toolz_ref.tag.startswith("swerve-instance:")
    image = docker_client.images.get(toolz_ref.tag)
    assert image.attrs["Config"]["User"] == "swerve"


@pytest.mark.docker
def test_a_failing_install_is_an_image_build_error_naming_task_and_tier(docker_client, toolz_ref):
    broken = TOOLZ.model_copy(update={"instance_id": "toolz-broken-install", "install_cmd": "echo boom-1234 >&2; exit 3"})
    with pytest.raises(ImageBuildError) as info:
        ensure_instance_image(broken, client=docker_client)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("toolz-broken-install: instance image build failed")
    assert "boom-1234" in info.value.log
    log_file = Path(message.rsplit("full log: ", 1)[1])
    assert "boom-1234" in log_file.read_text()


def test_debian_mirror_and_suite_are_read_from_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("SWERVE_DEBIAN_MIRROR", raising=False)
    monkeypatch.delenv("SWERVE_DEBIAN_SUITE", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: trixie-security\nComponents: main\n"
    )
    assert debian_source(tmp_path) == ("http://mirror.example/debian", "trixie")

    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main\n"
    )
    assert debian_source(tmp_path) == ("http://list.example/debian", "bookworm")

    (tmp_path / "sources.list").unlink()
    with pytest.raises(ImageBuildError, match="--base-image"):
        debian_source(tmp_path)


class _FakeImage:
    def __init__(self, tag: str, tier: str):
        self.tags, self.id, self.short_id = [tag], f"sha256:{tag}", tag
        self.labels = {"swerve.tier": tier}
        self.attrs = {"Size": 1, "Created": ""}


class _FakeImages:
    def __init__(self, images, in_use=()):
        self.images, self.in_use, self.removed = images, set(in_use), []

    def list(self, filters=None):
        return list(self.images)

    def remove(self, tag):
        if tag in self.in_use:
            raise RuntimeError("conflict: image is being used by a running container")
        self.removed.append(tag)


class _FakeClient:
    def __init__(self, images):
        self.images = images


def test_prune_removes_instances_only_unless_all_and_children_first():
    from swerve.environments.images import prune_images

    images = [_FakeImage("swerve-base:b", "base"), _FakeImage("swerve-env:e", "env"),
              _FakeImage("swerve-instance:i1", "instance"), _FakeImage("swerve-instance:i2", "instance")]
    fake = _FakeImages(images, in_use={"swerve-instance:i2"})
    assert prune_images(_FakeClient(fake)) == ["swerve-instance:i1"]

    fake = _FakeImages(images, in_use={"swerve-instance:i2"})
    removed = prune_images(_FakeClient(fake), all=True)
    assert removed == ["swerve-instance:i1", "swerve-env:e", "swerve-base:b"]


def test_wheelhouse_holds_dependencies_and_build_requirements_but_not_the_project(tmp_path, monkeypatch):
    from swerve.environments.sources import prepare_repo
    from swerve.environments.wheelhouse import build_wheelhouse, read_manifest

    monkeypatch.setenv("SWERVE_HOME", str(tmp_path / "home"))
    project = tmp_path / "proj"
    (project / "proj").mkdir(parents=True)
    (project / "proj" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "proj"\nversion = "1.0"\n'
        'dependencies = ["toolz==0.12.1", "nonexistent-pkg-xyz; python_version < \'3\'"]\n'
        '[project.optional-dependencies]\ntest = ["nonexistent-pkg-abc"]\n'
    )
    task = Task(instance_id="wh", repo="local/proj", repo_source=str(project), test_requirements=[])
    wheelhouse, requirements = build_wheelhouse(task, prepare_repo(task))
    assert requirements == ["toolz==0.12.1"]
    names = sorted(p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl"))
    assert "toolz" in names and "setuptools" in names and "wheel" in names
    assert "proj" not in names
    assert read_manifest(wheelhouse)["build_requirements"] == ["setuptools>=64", "wheel"]
    assert build_wheelhouse(task, prepare_repo(task)) == (wheelhouse, requirements)
