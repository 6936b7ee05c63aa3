"""File and git operations every backend shares, expressed through its persistent
shell: read/write files, the diff against the base commit, reset to pristine."""

from __future__ import annotations

import posixpath
import shlex
import threading

from swerve.environments.shell import ShellSession, ansi_c_quote
from swerve.errors import InfraError
from swerve.schema import ExecResult

PRESERVE_LIST = "/opt/swerve/preserve.txt"
GIT = "git -c core.pager=cat -c core.quotepath=off -c color.ui=false"


class RepoOps:
    """Mixin for environments that have `shell: ShellSession` and `info`; call
    `_init_state()` first thing in the backend's __init__."""

    shell: ShellSession

    def _init_state(self) -> None:
        self._lock = threading.RLock()  # one command at a time
        self._state_lock = threading.Lock()  # guards `_closed` only, never held during a command
        self._closed = False

    def _mark_closed(self) -> bool:
        """True for the first caller only. It does not take the command lock, so
        close() ends a running command instead of waiting for it."""
        with self._state_lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        """Run `cmd` in the persistent shell; one command at a time."""
        with self._lock:
            if self._closed:
                raise InfraError(f"environment for {self.info.instance_id} is closed")
            return self.shell.run(cmd, timeout)

    def __init__(self, *, workdir: str, base_commit: str) -> None:
        self.workdir = workdir
        self.base_commit = base_commit or self._head_commit()
        self.info.base_commit = self.base_commit
        self._preserve = self._read_preserve_list()

    def _head_commit(self) -> str:
        result = self.shell.run(f"{GIT} -C {shlex.quote(self.workdir)} rev-parse HEAD", timeout=60)
        if result.exit_code != 0:
            raise InfraError(f"{self.workdir} is not a git repository: {result.output.strip()[:200]}")
        return result.output.strip()

    def _read_preserve_list(self) -> list[str]:
        result = self.shell.run(f"cat {PRESERVE_LIST} 2>/dev/null || true", timeout=60, limit=0)
        return [line.strip() for line in result.output.splitlines() if line.strip()]

    def resolve(self, path: str) -> str:
        return posixpath.normpath(path if path.startswith("/") else posixpath.join(self.workdir, path))

    def read_file(self, path: str) -> str:
        target = self.resolve(path)
        result = self.shell.run(f"cat -- {shlex.quote(target)}", timeout=120, limit=0)
        if result.exit_code != 0:
            raise FileNotFoundError(f"cannot read {target}: {result.output.strip()[:200]}")
        return result.output

    def write_file(self, path: str, content: str) -> None:
        target = self.resolve(path)
        parent = posixpath.dirname(target)
        cmd = f"mkdir -p -- {shlex.quote(parent)} && printf '%s' {ansi_c_quote(content)} > {shlex.quote(target)}"
        result = self.shell.run(cmd, timeout=120, limit=0)
        if result.exit_code != 0:
            raise OSError(f"cannot write {target}: {result.output.strip()[:200]}")

    def diff(self) -> str:
        """Changes against the base commit, untracked files included, without touching
        the repository's own index (a scratch copy of it is used)."""
        wd = shlex.quote(self.workdir)
        cmd = (
            f'__i=$(mktemp) && cp {wd}/.git/index "$__i" 2>/dev/null; '
            f'GIT_INDEX_FILE="$__i" {GIT} -C {wd} add -A >/dev/null 2>&1 && '
            f'GIT_INDEX_FILE="$__i" {GIT} -C {wd} diff --cached --binary --no-ext-diff {self.base_commit}; '
            '__rc=$?; rm -f "$__i"; (exit $__rc)'
        )
        result = self.shell.run(cmd, timeout=300, limit=0)
        if result.exit_code != 0:
            raise InfraError(f"git diff failed in {self.workdir}: {result.output.strip()[:300]}")
        return result.output

    def kill_others_snippet(self) -> str:
        """Shell code, run by the shell itself, that kills every process it started."""
        raise NotImplementedError

    def reset(self) -> None:
        """Back to the base commit: kill what runs, drop edits and untracked files
        (keeping what the image build left, e.g. build metadata), start a fresh shell."""
        wd = shlex.quote(self.workdir)
        keep = " ".join(f"-e {shlex.quote(p)}" for p in self._preserve)
        result = self.shell.renew(
            f"{self.kill_others_snippet()}; cd {wd} && "
            f"{GIT} -C {wd} reset --hard -q {self.base_commit} && {GIT} -C {wd} clean -fdqx {keep}"
        )
        if result.exit_code != 0:
            raise InfraError(f"reset failed in {self.workdir}: {result.output.strip()[:300]}")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
