"""reset() restores the image's state, and the container gives the agent nothing to
escalate with: an episode writes everywhere it can, the next one finds no trace."""

from __future__ import annotations

import pytest

from swerve.environments.base import Limits
from docker_on_image import docker_env_on

from swerve.environments.docker import DockerEnvironment

SITE = "$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"

SNAPSHOT = (
    "cd {wd} && {{ find / -xdev \\( -path /proc -o -path {wd}/.git/index \\) -prune -o -writable -printf '%p %y\\n' "
    "2>/dev/null | LC_ALL=C sort; find {wd} -path {wd}/.git/index -prune -o -type f -print0 | LC_ALL=C sort -z "
    "| xargs -0 sha1sum; git config --list --show-origin; ls -A /tmp /dev/shm; ipcs -m -q -s | grep -c '^0x'; "
    "ps -eo user,args --no-headers | LC_ALL=C sort; env | LC_ALL=C sort | grep -v '^_='; declare -F; trap; }} 2>&1"
)

EPISODE = [
    "echo secret > /tmp/left-in-tmp; mkdir -p /tmp/deep/dir && echo x > /tmp/deep/dir/f && chmod 000 /tmp/deep",
    "echo secret > $HOME/.gitconfig; mkdir -p $HOME/.config/git && echo '[alias] x = !id' > $HOME/.config/git/config",
    "echo secret > /var/tmp/left-in-var-tmp; echo secret > /dev/shm/left-in-shm",
    "touch /home/swerve/x 2>/dev/null; echo secret >> /home/swerve/.bashrc 2>/dev/null; true",
    f"echo 'import os' > {SITE}/evil.pth 2>/dev/null; echo x > /opt/venv/bin/pytest 2>/dev/null; true",
    "pip install --no-index nothing-here >/dev/null 2>&1; true",
    "git config core.hooksPath /tmp/hooks && git config alias.st '!echo hacked' && git config user.name agent",
    "printf '#!/bin/sh\\necho hook\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit",
    "echo '*.py' >> .git/info/exclude; echo 'x' > .git/info/grafts; mkdir -p .git/refs/replace",
    "echo '# changed' >> README.rst; echo new > untracked.txt; mkdir -p build && echo ignored > build/x.so",
    "git -c user.email=a@b -c user.name=a commit -qam 'agent commit' && git tag agent-tag && git stash list",
    "echo tampered >> toolz.egg-info/PKG-INFO",
    "git update-index --assume-unchanged README.rst && echo '# hidden' >> README.rst",
    "ipcmk -M 4096 >/dev/null; ipcmk -Q >/dev/null",
    "(setsid sleep 10000 >/dev/null 2>&1 &); nohup sleep 10001 >/dev/null 2>&1 &",
    "git() { echo fake-git; }; export LEFT_OVER=1; trap 'echo trapped' EXIT; alias ls='echo fake-ls'",
]


def _env(image) -> DockerEnvironment:
    return docker_env_on(image, "integrity")


@pytest.mark.docker
def test_reset_leaves_no_trace_of_an_episode_that_wrote_everywhere(toolz_image):
    wd = toolz_image.workdir
    with _env(toolz_image) as env:
        before = env.exec(SNAPSHOT.format(wd=wd), timeout=300).output
        for command in EPISODE:
            env.exec(command, timeout=60)
        dirty = env.exec(SNAPSHOT.format(wd=wd).replace("git config", "command git config"), timeout=300).output
        for trace in ("left-in-tmp", "untracked.txt", "core.hookspath", "sleep 10000", "LEFT_OVER", "declare -f git"):
            assert trace in dirty, trace
        env.reset()
        after = env.exec(SNAPSHOT.format(wd=wd), timeout=300).output
        assert after == before, _first_difference(before, after)
        assert env.exec("git log --all --oneline | wc -l").output.strip() == "1"
        assert env.exec("type -t git; git status --porcelain").output.strip() == "file"
        assert env.diff() == ""


def _first_difference(before: str, after: str) -> str:
    old, new = before.splitlines(), after.splitlines()
    extra = sorted(set(new) - set(old))[:10]
    missing = sorted(set(old) - set(new))[:10]
    return f"after reset, new: {extra}; gone: {missing}"


@pytest.mark.docker
def test_the_agent_can_write_only_the_repository_and_tmp(toolz_image):
    with _env(toolz_image) as env:
        listing = env.exec("find / -xdev -path /proc -prune -o -writable -print 2>/dev/null", timeout=300).output
        outside = [p for p in listing.split() if not p.startswith((env.workdir, "/tmp")) and p != "/var/tmp"]
        assert outside == []
        venv = env.exec(f"touch {SITE}/x.pth").exit_code
        assert venv != 0
        pip = env.exec("pip uninstall -y pytest 2>&1")
        assert pip.exit_code != 0 and "ermission" in pip.output
        assert env.exec("python -m pytest --version").exit_code == 0


@pytest.mark.docker
def test_no_setuid_program_no_capability_and_no_new_privileges(toolz_image):
    with _env(toolz_image) as env:
        assert env.exec("find / -xdev -perm /6000 -type f 2>/dev/null").output.strip() == ""
        status = env.exec("grep -E '^(CapEff|CapPrm|CapInh|CapAmb|CapBnd|NoNewPrivs)' /proc/self/status").output
        fields = dict(line.split(":\t") for line in status.strip().splitlines())
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
        assert int(fields["CapBnd"], 16) == 0b111 << 5  # KILL, SETGID, SETUID: for swerve's root processes only
        assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0
        assert fields["NoNewPrivs"].strip() == "1"
        su = env.exec("echo | su -c id root 2>&1; echo rc=$?")
        assert "uid=0" not in su.output and "rc=0" not in su.output
        assert env.exec("id -u").output.strip() == "1000"


LOCAL_SNAPSHOT = (
    "cd {wd} && {{ find . -path ./.git/index -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha1sum; "
    "find . -path ./.git/index -prune -o -print | LC_ALL=C sort; git config --list --show-origin; ls -A $HOME; "
    "ls -A /tmp; ls -A $VIRTUAL_ENV/lib/*/site-packages; env | LC_ALL=C sort | grep -v '^_='; declare -F; }} 2>&1"
)

LOCAL_EPISODE = [
    "echo secret > /tmp/left-in-tmp; echo secret > $HOME/.gitconfig; mkdir -p $HOME/.cache && echo x > $HOME/.cache/y",
    "echo 'import os' > $VIRTUAL_ENV/lib/python3*/site-packages/evil.pth 2>/dev/null; true",
    "git config core.hooksPath /tmp/hooks && git config alias.st '!echo hacked'",
    "printf '#!/bin/sh\\necho hook\\n' > .git/hooks/pre-commit && echo '*.py' >> .git/info/exclude",
    "echo '# changed' >> README.rst; echo new > untracked.txt; mkdir -p build && echo ignored > build/x.so",
    "git -c user.email=a@b -c user.name=a commit -qam 'agent commit' && git tag agent-tag",
    "nohup sleep 10002 >/dev/null 2>&1 &",
    "git() { echo fake-git; }; export LEFT_OVER=1",
]


def test_local_reset_restores_home_tmp_and_git_and_the_venv_is_read_only(toolz_task):
    from swerve.environments.local import LocalEnvironment

    env = LocalEnvironment.for_task(toolz_task, limits=Limits(exec_timeout_s=120), run_id="pytest-local-integrity")
    try:
        snapshot = LOCAL_SNAPSHOT.format(wd=env.workdir)
        before = env.exec(snapshot, timeout=300).output
        for command in LOCAL_EPISODE:
            env.exec(command, timeout=60)
        dirty = env.exec(snapshot.replace("git config", "command git config"), timeout=300).output
        for trace in ("left-in-tmp" if env.isolation == "bwrap" else ".gitconfig", "untracked.txt", "core.hookspath"):
            assert trace in dirty, trace
        assert ("evil.pth" in dirty) == (env.isolation != "bwrap")
        env.reset()
        after = env.exec(snapshot, timeout=300).output
        if env.isolation != "bwrap":  # without a sandbox the virtualenv is the agent's to write
            after = after.replace("evil.pth\n", "")
        assert after == before, _first_difference(before, after)
        assert env.exec("git log --all --oneline | wc -l").output.strip() == "1"
        if env.isolation == "bwrap":
            assert "sleep 10002" not in env.exec("ps -eo args").output
    finally:
        env.close()
