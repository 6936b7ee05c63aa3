"""The docker backend against a real instance image (toolz from its PyPI sdist)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from swerve.environments.base import Limits
from swerve.environments.docker import LABEL_RUN, DockerEnvironment

pytestmark = pytest.mark.docker


def _env(image, run_id="pytest-env", **limits):
    return DockerEnvironment(
        image.tag,
        instance_id="toolz-env-smoke",
        base_commit=image.base_commit,
        workdir=image.workdir,
        limits=Limits(**limits) if limits else Limits(exec_timeout_s=60),
        run_id=run_id,
    )


def test_runs_the_projects_own_tests_as_non_root(toolz_image):
    with _env(toolz_image) as env:
        who = env.exec("id -u; pwd")
        assert who.output.split() == ["1000", toolz_image.workdir]
        result = env.exec("python -m pytest -q -p no:cacheprovider toolz/tests/test_itertoolz.py", timeout=300)
        assert result.exit_code == 0, result.output[-2000:]
        assert " passed" in result.output


def test_cwd_and_exports_persist_between_commands(toolz_image):
    with _env(toolz_image) as env:
        env.exec("cd toolz && export SWERVE_PROBE=42")
        assert env.exec('pwd; echo "$SWERVE_PROBE"').output.split() == [f"{toolz_image.workdir}/toolz", "42"]


def test_timeout_kills_the_command_and_the_next_command_works(toolz_image):
    with _env(toolz_image) as env:
        env.exec("cd toolz")
        slow = env.exec("sleep 1000", timeout=2)
        assert slow.timed_out and slow.exit_code == 124
        after = env.exec("echo still-here; pwd")
        assert after.exit_code == 0
        assert after.output.split() == ["still-here", f"{toolz_image.workdir}/toolz"]
        assert "sleep 1000" not in env.exec("ps -eo args").output


def test_busy_shell_is_restarted_after_timeout(toolz_image):
    with _env(toolz_image) as env:
        stuck = env.exec("while :; do :; done", timeout=2)
        assert stuck.timed_out and stuck.shell_restarted
        assert env.exec("echo ok").output.strip() == "ok"
        # The stuck shell is gone, not left spinning beside its replacement.
        table = env.exec("ps -eo user=,args=").output
        shells = [line for line in table.splitlines() if line.split() == ["swerve", "bash", "--noprofile", "--norc"]]
        assert len(shells) == 1, table


def test_fork_bomb_is_capped_by_the_pid_limit(docker_client, toolz_image):
    with _env(toolz_image, pids=64, exec_timeout_s=60) as env:
        env.exec("bomb() { bomb | bomb & }; bomb", timeout=10)
        # Watch the container's process count until the bomb has pushed it to the limit (a
        # state, not a fixed sleep); no sample may ever exceed the limit.
        samples = []
        deadline = time.monotonic() + 120
        while (not samples or samples[-1] < 60) and time.monotonic() < deadline:
            stats = docker_client.api.stats(env.info.extra["container"], stream=False, one_shot=True)
            samples.append(stats["pids_stats"].get("current", 0))
        assert samples[-1] >= 60, f"the fork bomb never reached the PID limit: {samples[-10:]}"
        assert max(samples) <= 64, samples
        env.reset()
        assert env.exec("echo survived").output.strip() == "survived"
        assert int(env.exec("ls /proc | grep -c '^[0-9]'").output.strip()) < 10


def test_memory_hog_is_killed_by_the_memory_limit(toolz_image):
    with _env(toolz_image, memory_mb=256, exec_timeout_s=60) as env:
        hog = env.exec("python -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'", timeout=60)
        assert hog.exit_code != 0
        assert "1073741824" not in hog.output
        assert env.exec("echo alive").output.strip() == "alive"


def test_no_network_inside(toolz_image):
    with _env(toolz_image) as env:
        interfaces = env.exec("ls /sys/class/net").output.split()
        assert interfaces == ["lo"]
        probe = env.exec(
            "python -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=3)'", timeout=30
        )
        assert probe.exit_code != 0
        assert "unreachable" in probe.output.lower() or "error" in probe.output.lower()


def test_output_is_capped_head_and_tail_with_full_output_kept(toolz_image):
    with _env(toolz_image, output_limit_bytes=1000) as env:
        result = env.exec("seq 1 100000")
        assert result.truncated and result.output_bytes > 100000
        assert result.output.startswith("1\n2\n") and result.output.rstrip().endswith("100000")
        with open(result.full_output_path) as handle:
            assert handle.read().splitlines()[-1] == "100000"


def test_files_diff_and_reset(toolz_image):
    with _env(toolz_image) as env:
        original = env.read_file("toolz/itertoolz.py")
        env.write_file("toolz/itertoolz.py", original.replace("def remove(", "def remove_renamed(", 1))
        env.write_file("notes/new_file.txt", "untracked\n")
        env.exec("mkdir -p build_junk && touch build_junk/x && git add -A && git -c user.email=a@b -c user.name=a commit -qm agent")
        diff = env.diff()
        assert "+def remove_renamed(" in diff and "notes/new_file.txt" in diff
        env.exec("export LEFTOVER=1; cd /tmp")
        env.reset()
        assert env.diff() == ""
        assert env.read_file("toolz/itertoolz.py") == original
        state = env.exec('pwd; echo "[$LEFTOVER]"; ls notes 2>&1 | head -1; git rev-parse HEAD')
        lines = state.output.splitlines()
        assert lines[0] == toolz_image.workdir and lines[1] == "[]"
        assert "No such file" in lines[2]
        assert lines[3] == toolz_image.base_commit


def test_close_is_idempotent_and_removes_the_container(docker_client, toolz_image):
    env = _env(toolz_image, run_id="pytest-close")
    name = env.info.extra["container"]
    env.close()
    env.close()
    assert not docker_client.containers.list(all=True, filters={"name": name})


def test_sigint_and_sigterm_leave_no_container(docker_client, toolz_image, tmp_path):
    """A child process opens an environment, is interrupted, and must clean up."""
    for sig, run_id in ((signal.SIGINT, "pytest-sigint"), (signal.SIGTERM, "pytest-sigterm")):
        script = tmp_path / "hold.py"
        script.write_text(textwrap.dedent(f"""
            import sys, time
            from swerve.environments.docker import DockerEnvironment
            env = DockerEnvironment({toolz_image.tag!r}, instance_id="hold", base_commit={toolz_image.base_commit!r},
                                    workdir={toolz_image.workdir!r}, run_id={run_id!r})
            print("ready", flush=True)
            env.exec("sleep 600", timeout=900)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        assert docker_client.containers.list(filters={"label": f"{LABEL_RUN}={run_id}"})
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        left = docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        assert left == [], f"{sig.name} left {left}"
