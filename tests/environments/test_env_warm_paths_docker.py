"""The warm paths of the docker environment (issue 15) keep their promises: reset()
restores only what changed yet misses no kind of change, an untouched environment is
not reset again, and diff() answers from its cache only when nothing could have changed."""

from __future__ import annotations

import time

import pytest

from docker_on_image import docker_env_on

from swerve.environments.docker import DockerEnvironment

STATE = (
    "{ git status --porcelain --ignored --untracked-files=all; git rev-parse HEAD; git ls-files -v | grep '^[a-zS]'; "
    "ls -A .git; git config --list --local; git for-each-ref; ls -A /tmp /tmp/swerve-home /dev/shm; "
    "ls -lA --time-style=+ toolz.egg-info __pycache__ | sed 1d; ipcs -m -q | grep -c '^0x'; } 2>&1"
)

CHANGES = [
    "echo x > /tmp/left",
    "mkdir -p $HOME/.cache && echo x > $HOME/.cache/y",
    "echo x > /dev/shm/left",
    "git config user.name agent",
    "rm .git/description",
    "git update-index --assume-unchanged README.rst",
    "echo '# x' >> toolz/itertoolz.py",
    "mkdir -p toolz/sub && echo x > toolz/sub/new.py",
    "echo x > ignored.so && echo '*.so' > .git/info/exclude",
    "rm -rf toolz.egg-info",
    "echo x > __pycache__/planted.pyc",
    "git -c user.email=a@b -c user.name=a commit -qam 'agent commit' --allow-empty",
    "git tag agent-tag",
    "ipcmk -M 4096 >/dev/null",
    "chmod 000 toolz/curried",
]


def _env(image) -> DockerEnvironment:
    return docker_env_on(image, "warm-paths")


@pytest.mark.docker
def test_each_kind_of_change_alone_is_found_and_restored(toolz_image):
    with _env(toolz_image) as env:
        clean = env.exec(STATE).output
        env.reset()
        assert env.exec(STATE).output == clean
        for change in CHANGES:
            assert env.exec(change).exit_code == 0, change
            assert env.exec(STATE).output != clean, f"the change is visible: {change}"
            env.reset()
            assert env.exec(STATE).output == clean, f"reset restored: {change}"
            assert env.diff() == "", change


@pytest.mark.docker
def test_a_change_right_after_a_reset_is_not_missed_by_the_next_one(toolz_image):
    """The first command after a reset may run within the stamp's clock tick."""
    with _env(toolz_image) as env:
        for _ in range(5):
            env.exec("true")
            env.reset()
            env.exec("git config user.name fast; echo '# fast' >> README.rst")
            env.reset()
            assert env.exec("git config user.name; git status --porcelain").output.strip() == ""


@pytest.mark.docker
def test_an_untouched_environment_is_not_reset_again(toolz_image):
    with _env(toolz_image) as env:
        assert env.untouched, "a new environment is as reset() leaves it"
        shell_pid = env.shell.inner_pid
        env.reset()
        assert env.shell.inner_pid == shell_pid, "no new shell: nothing to restore"
        env.diff()
        env.read_file("README.rst")
        assert env.untouched, "reading does not touch"
        env.exec("true")
        assert not env.untouched
        env.reset()
        assert env.untouched and env.shell.inner_pid != shell_pid
        env.write_file("scratch.txt", "x")
        assert not env.untouched
        env.reset()
        assert env.diff() == ""


@pytest.mark.docker
def test_diff_is_answered_from_its_cache_only_when_nothing_can_have_changed(toolz_image):
    with _env(toolz_image) as env:
        env.exec("echo '# edit' >> README.rst")
        first = env.diff()
        assert "+# edit" in first
        calls = []
        run = env.shell.run
        env.shell.run = lambda *a, **k: calls.append(a) or run(*a, **k)
        assert env.diff() == first and calls == [], "nothing ran since: no round trip"
        env.exec("(while [ ! -e /tmp/go ]; do sleep 0.05; done; echo '# late' >> README.rst; echo > /tmp/written) "
                 ">/dev/null 2>&1 &")
        assert "+# late" not in env.diff(), "the background job waits for /tmp/go"
        env.container.exec_run(["touch", "/tmp/go"])  # from outside: nothing the environment counts as a change
        for _ in range(600):  # read_file runs nothing that counts as a change
            try:
                env.read_file("/tmp/written")
                break
            except FileNotFoundError:
                time.sleep(0.1)
        assert "+# late" in env.diff(), "a background job's later write is seen"
        env.exec("echo '# more' >> README.rst")
        assert "+# more" in env.diff(), "a command invalidates the cache"
        env.write_file("README.rst", "replaced\n")
        assert "+replaced" in env.diff(), "a write invalidates the cache"
        env.reset()
        assert env.diff() == ""
