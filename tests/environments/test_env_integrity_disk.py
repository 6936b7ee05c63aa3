"""Disk limits in a real container: /tmp is a size-limited tmpfs, the writable layer
has a watchdog, the host's output spool is capped and deleted, diff() is capped."""

from __future__ import annotations

import os

import pytest
from docker_on_image import docker_env_on

from swerve.environments.docker import DISK_LIMIT_EXIT_CODE, DockerEnvironment

pytestmark = pytest.mark.docker


def _env(image, **limits) -> DockerEnvironment:
    return docker_env_on(image, "disk", **limits)


def test_tmp_is_a_tmpfs_of_the_limits_size(toolz_image):
    with _env(toolz_image, tmp_mb=32) as env:
        full = env.exec("head -c 64000000 /dev/zero > /tmp/fill; echo rc=$?; df -m /tmp | tail -1")
        assert "No space left on device" in full.output and "rc=1" in full.output
        assert env.exec("df --output=fstype /tmp | tail -1").output.strip() == "tmpfs"
        env.reset()
        assert env.exec("ls -A /tmp").output.split() == ["swerve-home"]


def test_writing_past_the_disk_limit_is_stopped_and_reported(toolz_image):
    with _env(toolz_image, disk_mb=40) as env:
        small = env.exec("head -c 1000000 /dev/zero > small.bin")
        assert small.exit_code == 0
        writer = env.exec("(while :; do head -c 5000000 /dev/zero >> grow.bin; sleep 0.05; done) & sleep 3")
        assert writer.exit_code == DISK_LIMIT_EXIT_CODE
        assert "disk limit of 40 MB was passed" in writer.output
        size = _number(env.exec("stat -c %s grow.bin").output)
        later = env.exec("sleep 1; stat -c %s grow.bin")
        assert _number(later.output) == size, "the writer still runs"
        assert later.exit_code == DISK_LIMIT_EXIT_CODE, "still over the limit: said again"
        env.reset()
        assert env.exec("ls grow.bin small.bin 2>&1; true").output.count("No such file") == 2
        assert env.disk_used_bytes() < 40 << 20


def _number(output: str) -> int:
    """The first line of `output` that is a number (bash may first report the killed job)."""
    return int(next(line for line in output.splitlines() if line.strip().isdigit()))


def test_the_output_spool_is_capped_and_deleted_with_its_command(toolz_image):
    with _env(toolz_image, output_limit_bytes=4096, spool_limit_bytes=100_000) as env:
        loud = env.exec("head -c 3000000 /dev/zero | tr '\\0' x")
        assert loud.truncated and loud.output_bytes == 3_000_000
        assert os.path.getsize(loud.full_output_path) == 100_000
        env.exec("true")
        assert not os.path.exists(loud.full_output_path)
        last = env.exec("head -c 200000 /dev/zero")
    assert not os.path.exists(last.full_output_path)


def test_diff_names_a_huge_untracked_file_instead_of_inlining_it(toolz_image):
    with _env(toolz_image) as env:
        env.exec("head -c 200000000 /dev/urandom > huge.bin && echo '# note' >> README.rst && echo hi > small.txt")
        objects = env.exec("find .git/objects -type f | sort").output
        diff = env.diff()
        assert env.exec("find .git/objects -type f | sort").output == objects, "diff() wrote into .git"
        assert len(diff) < 100_000
        assert "# swerve: left out of the diff: huge.bin (200000000 bytes" in diff
        assert "+++ b/small.txt" in diff and "+# note" in diff
