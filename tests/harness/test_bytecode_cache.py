"""The task factory's sealed bytecode cache: kept through reset(), read-only once sealed,
never serving bytecode for a file written after it was opened; dropped where it cannot be
sealed. Real Docker with toolz's own suite; the local backend on a small git repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swerve.environments import Limits, open_environment
from swerve.environments.repo_ops import restore_script
from swerve.environments.scratch import ScratchEnvironment
from swerve.harness.bytecode_cache import open_bytecode_cache, seal_bytecode_cache
from swerve.harness.hidden_tests import run_pytest_on
from swerve.harness.mint import source_task
from swerve.harness.warm_runs import warm_up
from swerve.schema import TestStatus as Status

SOURCE = "pypi:toolz==0.12.1"
RAISES = "toolz/tests/test_utils.py::test_raises"


def _entries(env, folder: str) -> list[str]:
    listing = env.exec(f"cd {folder} && find . -name '*.pyc' -type f | sort")
    return listing.output.split()


@pytest.mark.docker
def test_sealed_cache_serves_no_file_written_after_it_was_opened(docker_client):
    task = source_task(SOURCE)
    with open_environment(task, "docker", Limits(exec_timeout_s=300), run_id="test-bytecode") as env:
        folder = open_bytecode_cache(env)
        assert folder == "/tmp/swerve-pycache"
        # written after the cache opened: the warm-up compiles the module into an entry
        # checked by time and size, which the seal must drop (pytest 9 checks its rewritten
        # test modules by hash, which no write can fool, so those stay)
        env.write_file("toolz/swerve_extra.py", "VALUE = 1\n")
        env.write_file("toolz/tests/test_swerve_extra.py",
                       "from toolz.swerve_extra import VALUE\n\n\ndef test_extra():\n    assert VALUE == 1\n")
        warm = run_pytest_on(env, task, [], timeout=300, bytecode_cache=folder)
        assert warm.statuses[RAISES] is Status.PASSED
        assert warm.statuses["toolz/tests/test_swerve_extra.py::test_extra"] is Status.PASSED
        assert any(entry.startswith("./testbed/toolz/swerve_extra.cpython-") for entry in _entries(env, folder))
        assert seal_bytecode_cache(env, folder) == folder
        sealed = _entries(env, folder)
        assert any(entry.startswith("./testbed/toolz/utils.cpython-") for entry in sealed)  # written before: kept
        assert any(entry.startswith("./testbed/toolz/tests/test_utils.cpython-") for entry in sealed)
        assert not any("/swerve_extra.cpython" in entry for entry in sealed)

        env.exec("echo x > /tmp/other")
        env.reset()
        assert env.exec("test -e /tmp/other").exit_code == 1  # the rest of /tmp is emptied
        assert env.exec(f"test -d {folder} && ! ( : > {folder}/new ) 2>/dev/null").exit_code == 0

        # the same size, written and put back within the same second as the runs: a cache
        # that recorded either version would serve it to the other
        original = env.read_file("toolz/utils.py")
        swapped = original.replace("return False", "return @").replace("return True", "return False").replace(
            "return @", "return True")
        assert swapped != original and len(swapped) == len(original)
        for _ in range(3):
            env.write_file("toolz/utils.py", swapped)
            run = run_pytest_on(env, task, ["toolz/tests/test_utils.py"], timeout=300, bytecode_cache=folder)
            assert run.statuses[RAISES] is Status.FAILED
            env.reset()
            run = run_pytest_on(env, task, ["toolz/tests/test_utils.py"], timeout=300, bytecode_cache=folder)
            assert run.statuses[RAISES] is Status.PASSED
        assert _entries(env, folder) == sealed


@pytest.mark.docker
def test_warm_cache_gives_the_same_statuses_as_runs_without_it(docker_client):
    task = source_task(SOURCE)
    with open_environment(task, "docker", Limits(exec_timeout_s=300), run_id="test-bytecode") as env:
        without = run_pytest_on(env, task, [], timeout=300)
        env.reset()
        folder = warm_up(env, task, timeout=300, serve=False).bytecode_cache
        assert folder and env.untouched
        cached = run_pytest_on(env, task, [], timeout=300, bytecode_cache=folder)
        assert "PYTHONPYCACHEPREFIX=/tmp/swerve-pycache" in cached.command
        assert "PYTHONDONTWRITEBYTECODE" not in cached.command and "PYTHONDONTWRITEBYTECODE=1" in without.command
    assert cached.statuses == without.statuses and len(cached.statuses) > 100


def _repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "test_pkg.py").write_text("from pkg import VALUE\n\n\ndef test_value():\n    assert VALUE == 1\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "b"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def test_a_cache_its_user_can_still_write_is_dropped(tmp_path: Path):
    """On the local backend the runs are this process's user: root (as in CI) can write a
    read-only folder, so the cache is removed and runs write no bytecode; any other user
    gets a sealed cache."""
    env = ScratchEnvironment(_repo(tmp_path / "repo"), instance_id="bytecode-local")
    try:
        folder = open_bytecode_cache(env)
        assert folder.endswith("/swerve-pycache")
        sealed = seal_bytecode_cache(env, folder)
        assert (sealed == "") == (os.geteuid() == 0)
        assert os.path.isdir(folder) == bool(sealed)
    finally:
        env.close()


def test_only_a_folder_directly_inside_an_emptied_one_can_be_kept(tmp_path: Path):
    env = ScratchEnvironment(_repo(tmp_path / "repo"), instance_id="bytecode-keep")
    try:
        with pytest.raises(ValueError, match="not a folder directly inside one of the emptied folders"):
            env.keep_across_reset("/var/cache/swerve")
        with pytest.raises(ValueError, match="emptied folders"):
            env.keep_across_reset(str(env.root / "tmp" / "a" / "b"))
        assert env._kept == []
        kept = str(env.root / "tmp" / "kept")
        env.keep_across_reset(kept)
        env.exec(f"mkdir -p {kept} && echo 1 > {kept}/f && echo 2 > {env.root / 'tmp' / 'gone'}")
        env.reset()
        assert (Path(kept) / "f").read_text() == "1\n" and not (env.root / "tmp" / "gone").exists()
    finally:
        env.close()


def test_restore_script_spares_the_kept_folders_only():
    script = restore_script("/testbed", "abc", "/p", wipe=["/tmp", "/dev/shm"], objects_owned_by_root=True,
                            spare=["/tmp/swerve-pycache"])
    assert "! -path /tmp/swerve-pycache ! -path '/tmp/swerve-pycache/*'" in script
    for bad in ("/tmp", "/tmp/", "/tmp/a/b", "/var/x", "/tmp/../etc"):
        with pytest.raises(ValueError, match=r"emptied folders \(/tmp, /dev/shm\)"):
            restore_script("/testbed", "abc", "/p", wipe=["/tmp", "/dev/shm"], objects_owned_by_root=True, spare=[bad])
