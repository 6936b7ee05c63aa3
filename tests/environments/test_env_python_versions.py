"""A task's own Python: the Debian suite that ships it, wheels chosen for it (not the
host's), and one clear error for a Python no suite ships. Unit tests: no Docker."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from swerve.environments.images import PYTHON_SUITES, suite_for_python, wanted_python
from swerve.environments.official_images import (
    images_mode,
    official_image_for,
    official_image_name,
    uses_official_image,
)
from swerve.environments.target_wheels import (
    marker_environment,
    sdist_build_requirements,
    target_flags,
    unmet_requirements,
)
from swerve.errors import ImageBuildError, TaskFormatError
from swerve.schema import Task


def _task(**fields) -> Task:
    return Task(instance_id="owner__proj-1", repo="owner/proj", **fields)


def test_default_python_keeps_the_hosts_path_and_versions_are_normalised():
    assert wanted_python(_task()) == ""
    assert wanted_python(_task(python="3.9")) == "3.9"
    assert wanted_python(_task(python="3.09.2")) == "3.9"
    with pytest.raises(TaskFormatError, match="owner__proj-1: python 'py39'"):
        wanted_python(_task(python="py39"))


def test_each_shipped_python_has_its_suite():
    assert {python: suite_for_python(python, "x") for python in ("3.9", "3.11", "3.13")} == {
        "3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
    assert PYTHON_SUITES["3.9"] == "bullseye"


@pytest.mark.parametrize("python", ["3.5", "3.6", "3.7", "3.8", "3.10", "3.12"])
def test_a_python_no_suite_ships_is_one_line_naming_the_row_and_the_official_image(python):
    with pytest.raises(TaskFormatError) as info:
        suite_for_python(python, "astropy__astropy-12907")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"astropy__astropy-12907: no Debian suite ships Python {python}")
    assert "--images official" in message and "--base-image" in message


def test_target_flags_select_the_target_abi_and_its_suites_glibc():
    flags = target_flags("3.9")
    assert flags[flags.index("--python-version") + 1] == "3.9"
    assert "cp39" in flags and "abi3" in flags
    platforms = [flags[i + 1] for i, flag in enumerate(flags) if flag == "--platform"]
    assert any(p.startswith("manylinux_2_31_") for p in platforms)
    assert not any(p.startswith("manylinux_2_32_") for p in platforms)


def _wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {line}\n" for line in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return path


def test_requirements_the_target_python_needs_are_found_even_when_the_host_skipped_them(tmp_path):
    """pip on a 3.11 host skips `tomli; python_version < "3.11"`; Python 3.9 needs it."""
    _wheel(tmp_path, "pytest", "7.3.0", [
        'tomli>=1.0.0; python_version < "3.11"',
        'exceptiongroup>=1.0.0rc8; python_version < "3.11"',
        "iniconfig",
        'colorama; sys_platform == "win32"',
        'xmlschema; extra == "testing"',
        'backports.zoneinfo; python_version < "3.9"',
    ])
    _wheel(tmp_path, "iniconfig", "2.0.0", [])
    assert unmet_requirements(tmp_path, "3.9", ["pytest==7.3.0"]) == ["tomli>=1.0.0", "exceptiongroup>=1.0.0rc8"]
    assert unmet_requirements(tmp_path, "3.11", ["pytest==7.3.0"]) == []
    assert "xmlschema" in unmet_requirements(tmp_path, "3.11", ["pytest[testing]==7.3.0"])


def test_marker_environment_is_the_targets():
    env = marker_environment("3.9")
    assert env["python_version"] == "3.9" and env["sys_platform"] == "linux"


def test_sdist_build_requirements_are_read_from_its_pyproject(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        data = b'[build-system]\nrequires = ["flit_core>=3.2,<4"]\nbuild-backend = "flit_core.buildapi"\n'
        info = tarfile.TarInfo("pkg-1.0/pyproject.toml")
        info.size = len(data)
        handle.addfile(info, io.BytesIO(data))
    assert sdist_build_requirements(archive) == ["flit_core>=3.2,<4"]
    bare = tmp_path / "old-1.0.tar.gz"
    with tarfile.open(bare, "w:gz") as handle:
        info = tarfile.TarInfo("old-1.0/setup.py")
        info.size = 0
        handle.addfile(info, io.BytesIO(b""))
    assert sdist_build_requirements(bare) == ["setuptools>=40.8.0", "wheel"]


def test_official_image_names_follow_swebench(monkeypatch):
    monkeypatch.delenv("SWERVE_OFFICIAL_NAMESPACE", raising=False)
    monkeypatch.delenv("SWERVE_OFFICIAL_TAG", raising=False)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert official_image_name("sympy__sympy-24539") == "swebench/sweb.eval.x86_64.sympy_1776_sympy-24539:latest"
    assert official_image_name("Foo__Bar-1", namespace="", tag="v2") == "sweb.eval.x86_64.foo__bar-1:v2"
    monkeypatch.setenv("SWERVE_OFFICIAL_NAMESPACE", "mirror.local/team")
    monkeypatch.setenv("SWERVE_OFFICIAL_TAG", "2024")
    assert official_image_name("psf__requests-2674") == "mirror.local/team/sweb.eval.x86_64.psf_1776_requests-2674:2024"
    assert official_image_for(_task(image="my/own:img")) == "my/own:img"


def test_images_mode_chooses_official_for_rows_with_an_image(monkeypatch):
    monkeypatch.delenv("SWERVE_IMAGES", raising=False)
    assert images_mode() == "auto"
    assert uses_official_image(_task(image="x:y")) and not uses_official_image(_task())
    assert uses_official_image(_task(), "official") and not uses_official_image(_task(image="x:y"), "local")
    monkeypatch.setenv("SWERVE_IMAGES", "official")
    assert uses_official_image(_task())
    with pytest.raises(ImageBuildError, match="images 'remote': use one of auto, local, official"):
        images_mode("remote")


def test_images_option_rejects_a_bad_value_and_exports_a_good_one(monkeypatch):
    from swerve.cli.options import apply_images_option

    monkeypatch.setenv("SWERVE_IMAGES", "auto")  # restored after the test
    with pytest.raises(ValueError, match="--images 'cloud'"):
        apply_images_option("cloud")
    apply_images_option("official")
    import os

    assert os.environ["SWERVE_IMAGES"] == "official"


@pytest.mark.docker
@pytest.mark.slow
def test_a_python_39_environment_gets_target_markers_pins_and_source_only_packages(docker_client, tmp_path):
    """A project on Python 3.9 from a 3.11 host: pytest 7.3's `tomli; python_version < "3.11"`
    is installed, the pin holds, and docopt 0.6.2 (a source distribution only) is built in
    a Python 3.9 container without network."""
    from swerve.environments.images import ensure_env_image
    from swerve.environments.sources import prepare_repo
    from swerve.environments.wheelhouse import build_wheelhouse, read_manifest

    project = tmp_path / "oldproj"
    (project / "oldproj").mkdir(parents=True)
    (project / "oldproj" / "__init__.py").write_text("VALUE = 1\n")
    (project / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='oldproj', version='1.0', packages=['oldproj'],\n"
        "      install_requires=['iniconfig', 'typing_extensions; python_version < \"3.10\"'])\n"
    )
    task = Task(instance_id="oldproj-py39", repo="local/oldproj", repo_source=str(project), python="3.9",
                env_requirements=["pytest==7.3.0", "docopt==0.6.2"], test_requirements=[])
    env_tag = ensure_env_image(task, client=docker_client)
    wheelhouse, requirements = build_wheelhouse(task, prepare_repo(task), python="3.9")
    manifest = read_manifest(wheelhouse)
    names = {name.split("-")[0].lower() for name in manifest["files"]}
    assert {"pytest", "tomli", "exceptiongroup", "docopt", "typing_extensions", "iniconfig"} <= names
    assert manifest["python"] == "3.9"
    assert any(name.startswith("docopt-0.6.2-") and name.endswith("-none-any.whl") for name in manifest["files"])
    assert requirements[:2] == ["pytest==7.3.0", "docopt==0.6.2"]
    script = ("python --version; python -c 'import pytest, tomli, docopt, typing_extensions; print(pytest.__version__)'; "
              "pip --version | cut -d' ' -f2")
    output = docker_client.containers.run(env_tag, ["bash", "-c", script], remove=True, user="swerve",
                                          network_disabled=True, network_mode="none").decode().split()
    assert output[0] == "Python" and output[1].startswith("3.9.")
    assert output[2:] == ["7.3.0", "24.0"]


def test_with_images_makes_the_choice_travel_with_each_task(monkeypatch):
    from swerve.environments.official_images import with_images

    monkeypatch.setenv("SWERVE_OFFICIAL_NAMESPACE", "swebench")
    monkeypatch.delenv("SWERVE_OFFICIAL_TAG", raising=False)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    rows = [_task(), Task(instance_id="a__b-2", repo="a/b", image="own/image:1")]
    official = with_images(rows, "official")
    assert [t.image for t in official] == ["swebench/sweb.eval.x86_64.owner_1776_proj-1:latest", "own/image:1"]
    assert [t.image for t in with_images(rows, "local")] == ["", ""]
    assert with_images(rows, "auto") == rows and with_images(rows, None) == rows


def test_the_image_salt_changes_every_tier_but_the_debian_bootstrap(monkeypatch):
    from swerve.environments import images

    monkeypatch.delenv("SWERVE_IMAGE_SALT", raising=False)
    plain = {tier: images._hash("2", tier, "inputs") for tier in ("rootfs", "base", "env", "instance", "official")}
    monkeypatch.setenv("SWERVE_IMAGE_SALT", "cold-1")
    salted = {tier: images._hash("2", tier, "inputs") for tier in plain}
    assert salted["rootfs"] == plain["rootfs"]
    assert all(salted[tier] != plain[tier] for tier in ("base", "env", "instance", "official"))


@pytest.mark.docker
@pytest.mark.slow
def test_a_row_whose_python_no_suite_ships_is_one_bad_task_line_and_the_others_are_graded(docker_client, tmp_path):
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions, load_tasks

    good = load_tasks(str(Path(__file__).resolve().parents[1] / "fixtures" / "toolz_tasks.jsonl"))[0]
    bad = good.model_copy(update={"instance_id": "owner__proj-38", "python": "3.8"})
    report = evaluate([good, bad], load_predictions("gold", [good, bad]), run_id="py38", output_dir=tmp_path,
                      backend="docker")
    assert report.grades[good.instance_id].resolved
    message = report.errors["owner__proj-38"]
    assert message.startswith("bad task: owner__proj-38: no Debian suite ships Python 3.8")
    assert "--images official" in message and "\n" not in message


class _FakePullApi:
    def __init__(self, events, gate=None):
        self.events, self.gate, self.asked = events, gate, []

    def pull(self, repository, tag, stream, decode):
        self.asked.append((repository, tag))
        if self.gate is not None:
            self.gate.wait()
        yield from self.events


class _FakePullClient:
    def __init__(self, api):
        self.api = api


def test_pull_reports_download_progress_and_fails_on_an_error_event_or_the_timeout():
    from swerve.environments.official_images import pull_image

    events = [
        {"status": "Pulling fs layer", "id": "a"},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 50, "total": 100}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 10, "total": 300}},
        {"status": "Extracting", "id": "a", "progressDetail": {"current": 99, "total": 100}},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 100, "total": 100}},
    ]
    seen = []
    api = _FakePullApi(events)
    pull_image(_FakePullClient(api), "ns/sweb.eval.x86_64.a_1776_b-1:v1", timeout_s=30,
               progress=lambda done, total: seen.append((done, total)))
    assert api.asked == [("ns/sweb.eval.x86_64.a_1776_b-1", "v1")]
    assert seen == [(50, 100), (60, 400), (110, 400)]
    with pytest.raises(RuntimeError, match="manifest unknown"):
        pull_image(_FakePullClient(_FakePullApi([{"error": "manifest unknown"}])), "x:y", timeout_s=30)
    import threading

    never_before_the_timeout = threading.Event()
    try:
        with pytest.raises(TimeoutError, match="timed out after 0 s"):
            pull_image(_FakePullClient(_FakePullApi(events, never_before_the_timeout)), "x:y", timeout_s=0.1)
    finally:
        never_before_the_timeout.set()


def test_downloads_for_an_older_python_never_pick_releases_that_need_a_newer_one(tmp_path):
    """Unpinned requirements resolve to the newest release whose Requires-Python admits
    3.9, and pytest 7.3's 3.9-only requirements come along (markers read for 3.9)."""
    import subprocess as sp
    import sys

    from packaging.specifiers import SpecifierSet

    from swerve.environments.target_wheels import download_for_python

    def pip(args):
        proc = sp.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
        if proc.returncode:
            raise sp.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)

    wheels = tmp_path / "wheels"
    download_for_python("3.9", ["pytest==7.3.0", "more-itertools", "numpy"], wheels, tmp_path / "scratch", pip,
                        None, "row-1")
    found = {}
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(meta).decode()
        wanted = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                       if line.startswith("Requires-Python:")), "")
        assert SpecifierSet(wanted).contains("3.9.2"), (wheel.name, wanted)
        found[wheel.name.split("-")[0].lower()] = wheel.name
    assert {"pytest", "tomli", "exceptiongroup", "more_itertools", "numpy"} <= set(found)
    assert "cp39" in found["numpy"]
