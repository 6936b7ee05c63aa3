"""The local backend: a private clone of the task's repository in a temporary
folder, a per-environment virtualenv over dependencies installed once from the
same wheelhouse the docker images use, and a persistent bash.

Isolation: with bubblewrap (`bwrap`) the shell sees the host read-only, has its
own /tmp, no network and its own PID namespace; without it, `unshare -n` removes
the network where the kernel allows it; without either, commands run as plain
subprocesses of the current user (no isolation) and `info.extra["isolation"]`
says so. Use the docker backend for untrusted code.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from swerve.environments import cleanup
from swerve.environments.base import EnvironmentInfo, Limits
from swerve.environments.fd_guard import DescriptorGuard
from swerve.environments.repo_ops import RepoOps, restore_script
from swerve.environments.shell import ShellSession
from swerve.errors import InfraError


class PipeTransport:
    """A local `bash` spoken to over stdin/stdout pipes (stderr merged)."""

    def __init__(self, argv: list[str], *, cwd: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self._fd = self.proc.stdout.fileno()
        self._guard = DescriptorGuard()

    def send(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise EOFError("shell exited") from exc

    def recv(self, timeout: float) -> bytes:
        readable, _ = self._guard.wait([self._fd], [], timeout)
        if not readable:
            return b""
        data = self._guard.call(os.read, self._fd, 1 << 16)
        if not data:
            raise EOFError("shell exited")
        return data

    def close(self) -> None:
        """Safe from another thread while a command is in flight (see fd_guard)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._guard.close(self._close_streams)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _close_streams(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(stat[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def namespace_pid(host_pid: int) -> int:
    """The innermost namespace's pid of a host process (NSpid's last field)."""
    try:
        with open(f"/proc/{host_pid}/status") as handle:
            for line in handle:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return host_pid


@lru_cache(maxsize=1)
def isolation_mode() -> str:
    """'bwrap', 'unshare' or 'none', whichever works here."""
    if shutil.which("bwrap"):
        probe = subprocess.run(
            ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid", "true"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return "bwrap"
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "-r", "true"], capture_output=True)
        if probe.returncode == 0:
            return "unshare"
    return "none"


class LocalEnvironment(RepoOps):
    """An Environment in a private clone on the host."""

    backend = "local"

    def __init__(
        self,
        repo_path: str | Path,
        *,
        instance_id: str,
        base_commit: str,
        deps_site_packages: list[str] | None = None,
        limits: Limits | None = None,
        run_id: str = "adhoc",
        isolation: str | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._init_state()
        self.root = Path(tempfile.mkdtemp(prefix=f"swerve-local-{instance_id[:40]}-"))
        self._shared_paths = [str(Path(p).resolve()) for p in deps_site_packages or []]
        cleanup.register(self)
        try:
            workdir = self._clone(Path(repo_path), base_commit)
            venv = self._make_venv(deps_site_packages or [], workdir)
            self._record_pristine(workdir)
        except BaseException:
            self.close()
            raise
        self.isolation = isolation or isolation_mode()
        self.info = EnvironmentInfo(
            backend=self.backend,
            instance_id=instance_id,
            workdir=str(workdir),
            base_commit=base_commit,
            extra={"isolation": self.isolation, "run_id": run_id, "root": str(self.root)},
        )
        self._env = {
            "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "VIRTUAL_ENV": str(venv),
            "LANG": "C.UTF-8",
            # An edit of the same size in the same second as the last import would otherwise
            # run the stale bytecode (its check is mtime in seconds + size).
            "PYTHONDONTWRITEBYTECODE": "1",
            "SWERVE_BASE_COMMIT": base_commit,
            "TMPDIR": "/tmp" if self.isolation == "bwrap" else str(self.root / "tmp"),
        }
        (self.root / "home").mkdir(exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        self.shell = ShellSession(
            self._start_shell,
            self._kill_children,
            output_limit=self.limits.output_limit_bytes,
            default_timeout=self.limits.exec_timeout_s,
            spool_dir=str(self.root),
            spool_limit=self.limits.spool_limit_bytes,
            init_script=f"cd {workdir}",
        )
        try:
            RepoOps.__init__(self, workdir=str(workdir), base_commit=base_commit)
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_task(cls, task, *, limits: Limits | None = None, run_id: str = "adhoc"):
        from swerve.environments.local_deps import ensure_deps_venv
        from swerve.environments.sources import prepare_repo

        repo = prepare_repo(task)
        site_packages = ensure_deps_venv(task, repo)
        return cls(
            repo.path,
            instance_id=task.instance_id,
            base_commit=repo.base_commit,
            deps_site_packages=[str(site_packages)],
            limits=limits,
            run_id=run_id,
        )

    def _clone(self, source: Path, base_commit: str) -> Path:
        workdir = self.root / "repo"
        steps = [
            ["git", "clone", "-q", "--no-checkout", str(source), str(workdir)],
            ["git", "-C", str(workdir), "remote", "remove", "origin"],
            ["git", "-C", str(workdir), "checkout", "-q", "--detach", base_commit or "HEAD"],
        ]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise InfraError(f"local environment: {' '.join(argv[:4])} failed: {done.stderr.strip()[:300]}")
        exclude = source / ".git" / "info" / "exclude"
        if exclude.exists():
            shutil.copy(exclude, workdir / ".git" / "info" / "exclude")
        return workdir

    def _record_pristine(self, workdir: Path) -> None:
        """What reset() restores the repository's .git from (see `restore_script`)."""
        pristine = self.root / "pristine"
        pristine.mkdir()
        script = (
            "git config core.logAllRefUpdates false && git update-ref ORIG_HEAD HEAD && rm -rf .git/logs && "
            f"tar -cf {shlex.quote(str(pristine / 'git-meta.tar'))} --exclude=.git/objects --exclude=.git/index "
            f"--exclude=.git/logs .git && find .git/objects ! -type d | LC_ALL=C sort > "
            f"{shlex.quote(str(pristine / 'git-objects.txt'))} && tar -cf {shlex.quote(str(pristine / 'preserved.tar'))} "
            "-T /dev/null"
        )
        done = subprocess.run(["bash", "-c", script], cwd=workdir, capture_output=True, text=True)
        if done.returncode != 0:
            raise InfraError(f"local environment: could not record the pristine .git: {done.stderr.strip()[:300]}")
        self._touch_stamp()

    def _make_venv(self, deps_site_packages: list[str], workdir: Path) -> Path:
        """A light per-environment virtualenv: no pip, the shared dependencies and the
        repository (its root, and src/ for src layouts) on its path through .pth files."""
        venv = self.root / "venv"
        base_python = getattr(sys, "_base_executable", sys.executable)
        done = subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
        if done.returncode != 0:
            raise InfraError(f"local environment: could not create a virtualenv: {done.stderr.strip()[:300]}")
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        site = venv / "lib" / version / "site-packages"
        repo_paths = [str(workdir / "src")] if (workdir / "src").is_dir() else [str(workdir)]
        (site / "swerve_env.pth").write_text("\n".join(repo_paths + deps_site_packages) + "\n")
        return venv

    def _argv(self) -> list[str]:
        shell = ["/bin/bash", "--noprofile", "--norc"]
        if self.isolation == "bwrap":
            return [
                "bwrap", "--die-with-parent", "--unshare-net", "--unshare-pid", "--ro-bind", "/", "/",
                "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                *[arg for path in self._shared_paths for arg in ("--ro-bind", path, path)],
                "--bind", str(self.root), str(self.root),
                *[arg for path in self._read_only_paths() for arg in ("--ro-bind", path, path)],
                "--chdir", self.info.workdir, *shell,
            ]
        if self.isolation == "unshare":
            return ["unshare", "-n", "-r", *shell]
        return shell

    def _start_shell(self) -> PipeTransport:
        return PipeTransport(self._argv(), cwd=self.info.workdir, env=self._env)

    def _kill_children(self, shell_pid: int) -> None:
        transport = self.shell._transport
        if transport is None:
            return
        for pid in descendants(transport.pid):
            if self.isolation == "bwrap" and namespace_pid(pid) in (1, shell_pid):
                continue
            if pid == transport.pid:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _read_only_paths(self) -> list[str]:
        """Inside the sandbox: the virtualenv, the pristine record and the base's packs."""
        packs = Path(self.info.workdir) / ".git" / "objects" / "pack"
        return [str(self.root / "venv"), str(self.root / "pristine"), *([str(packs)] if packs.is_dir() else [])]

    def _stop_everything(self) -> None:
        """Kill the shell's process group (and, under bubblewrap, its PID namespace with
        every process in it); without bubblewrap, also what the shell started."""
        transport = self.shell._transport
        if transport is not None:
            self._kill_children(0)
            transport.close()

    def _restore_script(self) -> str:
        wipe = [str(self.root / "home"), str(self.root / "tmp")]
        if self.isolation == "bwrap":
            wipe.append("/tmp")
        return restore_script(
            self.workdir, self.base_commit, str(self.root / "pristine"), wipe=wipe, objects_owned_by_root=False,
            stamp=str(self.root / "pristine" / "stamp"), git_entries=self._git_entries, spare=self._kept,
        )

    def _touch_stamp(self) -> None:
        """The stamp's times renewed, and the clock past them (see repo_ops.STAMP_TICK_SNIPPET)."""
        stamp = self.root / "pristine" / "stamp"
        stamp.touch()
        tick = stamp.with_name("stamp.tick")
        for _ in range(20000):
            tick.touch()
            if tick.stat().st_mtime_ns > stamp.stat().st_mtime_ns:
                break

    def close(self) -> None:
        """Idempotent; does not wait for a running command (stopping the shell ends it)."""
        if not self._mark_closed():
            return
        shell = getattr(self, "shell", None)
        if shell is not None:
            shell.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        cleanup.unregister(self)
