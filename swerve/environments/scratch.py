"""The scratch backend: a throwaway git clone of the task's repository in a temporary
folder and a persistent bash running as the current user. NOT isolated: commands see
and can change the whole host, reach the network, and use the Python that runs swerve
(its packages included). It exists for tests and quick experiments on trusted code;
use `docker` (or `local` with bubblewrap) for anything a model writes.

It is the local backend without its sandbox and without a per-task dependency
virtualenv, so it follows the Environment protocol exactly as the other backends do:
a persistent shell, `diff()` against the base commit, `reset()` back to the pristine
clone (.git metadata included), InfraError from `exec`/`reset` after `close()`.
One dropped without `close()` is released when it is garbage-collected (its folder
removed, its shell killed). Registered as `--backend scratch`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import weakref
from pathlib import Path

from swerve.environments.base import Limits
from swerve.environments.local import LocalEnvironment
from swerve.schema import ExecResult


class ScratchEnvironment(LocalEnvironment):
    """An Environment in a temporary clone of `repo_path`, no sandbox. `commands` lists
    every command `exec` was given, in order (handy when checking what an agent ran)."""

    backend = "scratch"

    def __init__(
        self,
        repo_path: str | Path,
        *,
        instance_id: str,
        base_commit: str = "",
        limits: Limits | None = None,
        run_id: str = "adhoc",
    ) -> None:
        self.commands: list[str] = []
        self._shell_pid = {"pid": 0}
        super().__init__(repo_path, instance_id=instance_id, base_commit=base_commit, limits=limits,
                         run_id=run_id, isolation="none")
        self._release = weakref.finalize(self, _release, str(self.root), self._shell_pid)

    @classmethod
    def for_task(cls, task, *, limits: Limits | None = None, run_id: str = "adhoc"):
        from swerve.environments.sources import prepare_repo

        repo = prepare_repo(task)
        return cls(repo.path, instance_id=task.instance_id, base_commit=repo.base_commit, limits=limits,
                   run_id=run_id)

    def _make_venv(self, deps_site_packages: list[str], workdir: Path) -> Path:
        """No virtualenv of its own: the interpreter running swerve (its folder first on PATH)."""
        return Path(sys.executable).parent.parent

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        self.commands.append(cmd)
        return super().exec(cmd, timeout)

    def _start_shell(self):
        transport = super()._start_shell()
        self._shell_pid["pid"] = transport.pid
        return transport

    def close(self) -> None:
        super().close()
        release = getattr(self, "_release", None)
        if release is not None:
            release.detach()


def _release(root: str, shell: dict) -> None:
    """An environment dropped without close() (a quick experiment, a test): its shell
    (when it is still this process's child) is killed and its folder removed."""
    pid = shell.get("pid") or 0
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
        if pid and parent == os.getpid():
            os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
    shutil.rmtree(root, ignore_errors=True)
