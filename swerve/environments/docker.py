"""The docker backend: one container per environment, networking off, a non-root
user, CPU/memory/PID limits, a size-limited tmpfs on /tmp, no capabilities but KILL
(kept for the root control shell), no-new-privileges, and a persistent shell: spoken
to over FIFOs of a read-only host folder when the daemon runs on this machine (the
container's own command starts the control shell and the agent's respawner on them),
else over the socket of the exec that starts it (see `docker_transports`).

Containers carry labels (`swerve.run`, `swerve.task`, and the owner: `swerve.owner_pid`,
`swerve.owner_host`, `swerve.owner_pidns`) so that `swerve env prune` can reap leftovers
(see `is_orphan`); every open environment is also closed at interpreter exit and on
SIGINT/SIGTERM (see `cleanup.py`).
"""

from __future__ import annotations

import os
import time
import uuid
from functools import lru_cache

from swerve.environments import cleanup
from swerve.environments.base import EnvironmentInfo, Limits
from swerve.environments.docker_transports import (
    ExecSocketTransport,
    FifoChannel,
    FifoFolder,
    FifoTransport,
    FifoUnavailable,
    prestart_command,
)
from swerve.environments.repo_ops import STAMP_TICK_SNIPPET, RepoOps, restore_script
from swerve.environments.shell import ShellSession, kill_all_but_snippet
from swerve.errors import DockerUnavailable, InfraError
from swerve.processes import host_identity, pid_namespace, process_alive
from swerve.schema import ExecResult

USER = "swerve"
LABEL_RUN = "swerve.run"
LABEL_TASK = "swerve.task"
LABEL_OWNER = "swerve.owner_pid"
LABEL_HOST = "swerve.owner_host"
LABEL_PIDNS = "swerve.owner_pidns"
KEEPER_CMD = ["sleep", "infinity"]
SHELL_BODY = "bash --noprofile --norc"
HAS_SETPRIV = "command -v setpriv >/dev/null 2>&1"
PRISTINE = "/opt/swerve/pristine"
RUN_DIR = "/run/swerve"
"""Root's folder for the reset stamp and the respawn flags (the agent cannot write it)."""
STAMP = f"{RUN_DIR}/reset-stamp"
"""Root's: touched when the container starts and after each reset (see `restore_script`)."""
WIPED = ("/tmp", "/dev/shm", "/dev/mqueue")
"""Writable by the agent's user and emptied by reset() ($HOME is /tmp/swerve-home)."""
DISK_LIMIT_EXIT_CODE = 125
DISK_CHECK_AFTER_S = 0.2
DISK_CHECK_EVERY_S = 2.0
SHELL_TRANSPORT_VARIABLE = "SWERVE_DOCKER_SHELL"
"""`fifo`, `socket` or `auto` (the default): how the agent's shell is spoken to. `auto`
uses FIFOs when the daemon listens on a local unix socket and falls back to the exec's
socket, for the rest of the process, when they do not connect (a daemon in a VM);
`fifo` makes that an error."""
_FIFOS_FAILED: set[str] = set()
"""Daemons (by API address) whose containers could not reach our FIFOs."""
CONTROL_CAPABILITIES = ("KILL", "SETUID", "SETGID")
"""What the container keeps, for swerve's own root processes only: KILL for the control
shell, which kills the agent's processes (another user's) on timeout and reset; SETUID
and SETGID for the respawner, which starts the agent's bash as `swerve` (setpriv). The
agent's user has no capability, no setuid program to gain one, and no-new-privileges."""


@lru_cache(maxsize=1)
def docker_client():
    """The process's docker SDK client (API version negotiated, long timeout for
    image builds); DockerUnavailable with the fix when no daemon answers."""
    import docker

    try:
        client = docker.from_env(version="auto", timeout=900)
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(
            f"no Docker daemon answers ({type(exc).__name__}: {str(exc)[:160]}); "
            "start one (as root: dockerd --bridge=none --iptables=false &) or use --backend local"
        ) from None
    return client


def docker_available() -> bool:
    try:
        docker_client()
        return True
    except DockerUnavailable:
        return False


class DockerEnvironment(RepoOps):
    """An Environment in a docker container started from a task's instance image."""

    backend = "docker"

    def __init__(
        self,
        image: str,
        *,
        instance_id: str,
        base_commit: str,
        workdir: str = "/testbed",
        limits: Limits | None = None,
        run_id: str = "adhoc",
        client=None,
        env: dict[str, str] | None = None,
        image_digest: str = "",
    ) -> None:
        self.limits = limits or Limits()
        self.client = client or docker_client()
        self._init_state()
        self.container = None
        name = f"swerve-{_slug(run_id)}-{_slug(instance_id)}-{uuid.uuid4().hex[:8]}"
        self._respawn_flag = f"{RUN_DIR}/respawn-{uuid.uuid4().hex}"
        self._fifos = FifoFolder() if _shell_transport(self.client) == "fifo" else None
        self._prestarted: dict[str, FifoChannel] = {}
        try:
            command = self._prestart_shells() if self._fifos is not None else KEEPER_CMD
            self.container = self.client.containers.run(
                image,
                command,
                name=name,
                detach=True,
                init=True,
                user="root",
                security_opt=["no-new-privileges"],
                cap_drop=["ALL"],
                cap_add=list(CONTROL_CAPABILITIES),
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.limits.tmp_mb}m,mode=1777"},
                working_dir=workdir,
                network_mode="none",
                network_disabled=True,
                mem_limit=f"{self.limits.memory_mb}m",
                memswap_limit=f"{self.limits.memory_mb}m",
                pids_limit=self.limits.pids,
                nano_cpus=int(self.limits.cpus * 1e9),
                labels={LABEL_RUN: run_id, LABEL_TASK: instance_id, **owner_labels()},
                environment=env or {},
                volumes=self._fifos.volume() if self._fifos else None,
            )
        except Exception as exc:
            self._drop_prestarted()
            if self._fifos is not None:
                self._fifos.remove()
            raise InfraError(f"could not start a container for {instance_id} from {image}: {exc}") from exc
        cleanup.register(self)
        self.info = EnvironmentInfo(
            backend="docker",
            instance_id=instance_id,
            image=image,
            image_digest=image_digest or _image_digest(self.client, image),
            workdir=workdir,
            base_commit=base_commit,
            extra={"container": self.container.name},
        )
        self._keeper_pid = 0
        self._respawner = False
        self._pristine = False
        self._disk_checked = 0.0
        self.control = ShellSession(
            self._start_control, lambda _pid: None, output_limit=1 << 20, default_timeout=120
        )
        self.shell = ShellSession(
            self._start_shell,
            self._kill_children,
            output_limit=self.limits.output_limit_bytes,
            default_timeout=self.limits.exec_timeout_s,
            spool_limit=self.limits.spool_limit_bytes,
            init_script=f"cd {workdir} && export HOME=/tmp/swerve-home && {{ [ -d $HOME ] || mkdir -p $HOME; }}",
        )
        try:
            self._learn_container()
            self.shell.run("true", timeout=60)
        except BaseException:
            self.close()
            raise
        RepoOps.__init__(self, workdir=workdir, base_commit=base_commit)

    @classmethod
    def for_task(cls, task, *, limits: Limits | None = None, run_id: str = "adhoc", client=None, base_image=None):
        from swerve.environments.images import ensure_instance_image

        client = client or docker_client()
        ref = ensure_instance_image(task, client=client, base_image=base_image)
        return cls(
            ref.tag,
            instance_id=task.instance_id,
            base_commit=ref.base_commit,
            workdir=ref.workdir,
            limits=limits,
            run_id=run_id,
            client=client,
            image_digest=ref.id,
        )

    def exec(self, cmd: str, timeout: float | None = None) -> ExecResult:
        """Run `cmd` in the persistent shell; afterwards the writable layer's size is
        checked (after any command of DISK_CHECK_AFTER_S or more, else at most every
        DISK_CHECK_EVERY_S): past `limits.disk_mb`, every process the command left is
        killed and the result says so, with exit code DISK_LIMIT_EXIT_CODE."""
        with self._lock:
            result = super().exec(cmd, timeout)
            now = time.monotonic()
            if result.duration_s < DISK_CHECK_AFTER_S and now - self._disk_checked < DISK_CHECK_EVERY_S:
                return result
            self._disk_checked = now
            used = self.disk_used_bytes()
            if used <= self.limits.disk_mb * (1 << 20):
                return result
            self._kill_children(self.shell.inner_pid)
        note = (
            f"\n[swerve: the environment's disk limit of {self.limits.disk_mb} MB was passed "
            f"({used / (1 << 20):.0f} MB written outside /tmp); the command's processes were killed; "
            "delete files to go on]\n"
        )
        return result.model_copy(update={"output": result.output + note, "exit_code": DISK_LIMIT_EXIT_CODE})

    def disk_used_bytes(self) -> int:
        """Bytes in the container's writable layer (what it wrote outside its tmpfs mounts)."""
        rows = self.client.api.containers(all=True, size=True, filters={"id": self.container.id})
        return int(rows[0].get("SizeRw") or 0) if rows else 0

    def _start_shell(self) -> ExecSocketTransport | FifoTransport:
        """The agent's bash. With setpriv in the image it runs under a root respawner
        (a loop the agent's user can neither signal nor trace) that starts a new bash on
        the same exec when reset() has killed the old one and raised the respawn flag;
        otherwise, and when the bash exits on its own, the exec ends. The flag stays up
        until the reset is over, so a fork refused while a killed fork bomb's processes are
        still being reaped is simply tried again.

        On FIFOs when the container has its `FifoFolder` (see `_shell_transport`)."""
        prestarted = self._prestarted.pop("shell", None)
        if prestarted is not None and not self._respawner:
            prestarted.close()  # its wrapper found no setpriv and did not start
            prestarted = None
        user, body = ("root", self._respawner_body()) if self._respawner else (USER, SHELL_BODY)
        if self._fifos is not None and self.client.api.base_url not in _FIFOS_FAILED:
            try:
                if prestarted is not None:
                    return FifoTransport(prestarted)
                return FifoTransport.by_exec(self.client, self.container.id, self._fifos, user=user,
                                             workdir=self.info.workdir, body=body)
            except FifoUnavailable as exc:
                self._fifos_failed(exc)
        return ExecSocketTransport(
            self.client, self.container.id, user=user, workdir=self.info.workdir, env={},
            argv=["sh", "-c", body] if self._respawner else None,
        )

    def _respawner_body(self) -> str:
        return (
            f"while :; do setpriv --reuid={USER} --regid={USER} --init-groups "
            f"env HOME=/home/{USER} USER={USER} LOGNAME={USER} {SHELL_BODY}; "
            f"[ -s {self._respawn_flag} ] || exit; done"
        )

    def _prestart_shells(self) -> list[str]:
        """The container's command when it has a `FifoFolder`: the keeper, after starting
        the wrappers of the control shell and of the agent's respawner (where the image
        has setpriv) on new channels, which `_start_control` and `_start_shell` then
        connect to instead of starting each with a `docker exec` (two execs cost the
        daemon, containerd and runc ~140 ms of CPU per container: bench/env_latency.py)."""
        assert self._fifos is not None
        self._prestarted = {"control": FifoChannel(self._fifos), "shell": FifoChannel(self._fifos)}
        return prestart_command(KEEPER_CMD, [
            (self._prestarted["control"], SHELL_BODY, ""),
            (self._prestarted["shell"], self._respawner_body(), HAS_SETPRIV),
        ])

    def _drop_prestarted(self) -> None:
        for channel in getattr(self, "_prestarted", {}).values():
            channel.close()
        self._prestarted = {}

    def _fifos_failed(self, exc: FifoUnavailable) -> None:
        """FIFOs did not connect: an error when they were asked for, else the exec's
        socket from now on for this daemon."""
        self._drop_prestarted()
        if _wanted_shell_transport() == "fifo":
            raise InfraError(f"{exc}; unset {SHELL_TRANSPORT_VARIABLE} to use the exec's socket") from None
        _FIFOS_FAILED.add(self.client.api.base_url)

    def _start_control(self) -> ExecSocketTransport | FifoTransport:
        """The root control shell: on its prestarted channel when the container has one
        (only the first start; a control shell that died comes back on the exec's socket)."""
        prestarted = self._prestarted.pop("control", None)
        if prestarted is not None:
            try:
                return FifoTransport(prestarted)
            except FifoUnavailable as exc:
                self._fifos_failed(exc)
        return ExecSocketTransport(self.client, self.container.id, user="root", workdir="/", env={})

    def _root_exec(self, script: str) -> tuple[int, str]:
        """Run `script` in the control shell: a root bash started before the agent ran
        anything, which the agent's user can neither signal nor trace."""
        result = self.control.run(script, limit=0)
        return result.exit_code, result.output

    def _learn_container(self) -> None:
        """One control round trip at start: the keeper's pid (init's first child: the
        prestarted wrappers init adopted come after it), whether the image has the reset
        record and setpriv (for the respawner); the stamp is set."""
        _, out = self._root_exec(
            "read -r keeper _ < /proc/1/task/1/children; echo keeper=$keeper; "
            f"[ -f {PRISTINE}/git-meta.tar ] && echo pristine; "
            f"mkdir -p {RUN_DIR} && : > {STAMP} && : > {self._respawn_flag} && {HAS_SETPRIV} && echo setpriv"
        )
        words = out.split()
        keeper = next((w.split("=", 1)[1] for w in words if w.startswith("keeper=")), "")
        self._keeper_pid = int(keeper) if keeper.isdigit() else 0
        self._pristine = "pristine" in words
        self._respawner = "setpriv" in words
        self.shell.respawns = self._respawner

    def _known_pids(self) -> list[int]:
        """init, the keeper, the control shell and the shell's parent: the respawner or the
        FIFO wrapper (see RepoOps.diff)."""
        pids = [1, self._keeper_pid, self.control.inner_pid]
        if self._respawner or self.shell.parent_pid:  # the respawner, or the FIFO wrapper
            pids.append(self.shell.parent_pid)
        return [*pids, *self._control_wrapper(), *self._kept_pids] if all(pids) else []

    def _control_wrapper(self) -> list[int]:
        """The prestarted control shell's wrapper (its parent), which the kills spare; none
        for a control shell started by an exec (its parent is outside the container)."""
        return [self.control.parent_pid] if self.control.parent_pid else []

    keeps_processes = True

    def keep_process_across_reset(self, pid: int) -> None:
        """See RepoOps.keep_process_across_reset: `pid` joins the keeper and the
        respawner among the processes the kills spare."""
        if pid <= 1:
            raise ValueError(f"{pid} is not a process the environment can keep")
        with self._lock:
            self._kept_pids = [*self._kept_pids, pid]

    def _kill_children(self, shell_pid: int) -> None:
        """Kill every process in the container but init, the keeper, the control shell
        and the agent's shell. Nothing once close() has begun: removing the container ends
        every process, and the closed control shell would otherwise be started again on a
        container being removed (a command in flight woke by close() then waited on the
        daemon, up to its timeout)."""
        if self._closed:
            return
        spare = " ".join(str(p) for p in (self._keeper_pid, self.shell.parent_pid, shell_pid, *self._control_wrapper(),
                                          *self._kept_pids) if p)
        self._root_exec(kill_all_but_snippet(spare))

    def _stop_everything(self) -> None:
        """Every process but init, the keeper and the respawner; the respawner, its flag
        raised, then starts a new bash (see `_start_shell`)."""
        respawner = self.shell.parent_pid if self._respawner and self.shell._transport is not None else 0
        raise_flag = f"echo 1 > {self._respawn_flag}; " if respawner else ""
        spare = " ".join(str(p) for p in (self._keeper_pid, respawner, *self._control_wrapper(), *self._kept_pids) if p)
        self._root_exec(raise_flag + kill_all_but_snippet(spare))

    def _restore_script(self) -> str:
        return restore_script(
            self.workdir, self.base_commit, PRISTINE if self._pristine else "",
            wipe=list(WIPED), objects_owned_by_root=True, stamp=STAMP, preserve=self._preserve,
            git_entries=self._git_entries, spare=self._kept,
        )

    def _touch_stamp(self) -> None:
        """Builtins only (no process to start): the stamp's times renewed (and the clock
        past them, see STAMP_TICK_SNIPPET), the flag lowered."""
        self._root_exec(f": > {STAMP} && : > {self._respawn_flag} && __s={STAMP} && {STAMP_TICK_SNIPPET}; unset __s")

    def close(self) -> None:
        """Idempotent; does not wait for a running command (removing the container ends it)."""
        if not self._mark_closed():
            return
        try:
            for session in (getattr(self, "shell", None), getattr(self, "control", None)):
                if session is not None:
                    session.discard_spools()
                    if session._transport is not None:
                        session._transport.close()
        finally:
            if self.container is not None:
                try:
                    self.container.remove(force=True, v=True)
                except Exception:
                    pass
            self._drop_prestarted()
            if getattr(self, "_fifos", None) is not None:
                self._fifos.remove()
            cleanup.unregister(self)


def _wanted_shell_transport() -> str:
    """SHELL_TRANSPORT_VARIABLE's value: "auto", "fifo" or "socket"."""
    wanted = os.environ.get(SHELL_TRANSPORT_VARIABLE, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "fifo", "socket"):
        raise InfraError(f"{SHELL_TRANSPORT_VARIABLE}={wanted!r}: use fifo, socket or auto")
    return wanted


def _shell_transport(client) -> str:
    """"fifo" or "socket" for a new container (see SHELL_TRANSPORT_VARIABLE): FIFOs need
    the daemon on this machine, which a local unix socket says (a TCP or SSH daemon may be
    anywhere), and are not tried again once they failed to connect."""
    wanted = _wanted_shell_transport()
    if wanted == "auto":
        from docker.transport import UnixHTTPAdapter

        local = isinstance(getattr(client.api, "_custom_adapter", None), UnixHTTPAdapter)
        wanted = "fifo" if local and client.api.base_url not in _FIFOS_FAILED else "socket"
    return wanted


def _image_digest(client, image: str) -> str:
    """The image's id, or "" when the daemon does not have it."""
    try:
        return client.images.get(image).id
    except Exception:
        return ""


def _slug(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)
    return keep.strip("-.")[:40] or "x"


def owner_labels(pid: int | None = None) -> dict[str, str]:
    """The labels naming a container's owner: its pid (this process's by default), host
    and PID namespace."""
    return {LABEL_OWNER: str(os.getpid() if pid is None else pid), LABEL_HOST: host_identity(),
            LABEL_PIDNS: pid_namespace()}


def is_orphan(labels: dict[str, str]) -> bool:
    """Whether a container with these labels was left by a process that is gone: only when
    it was started on this host, in this PID namespace (a pid means nothing elsewhere), by
    a process that no longer exists. A container from another host or namespace, or one
    without those labels (an older swerve), is never an orphan here: `--all` removes it."""
    owner = labels.get(LABEL_OWNER, "")
    if labels.get(LABEL_HOST) != host_identity() or labels.get(LABEL_PIDNS) != pid_namespace():
        return False
    return owner.isdigit() and not process_alive(int(owner))


def prune_containers(client=None, *, run_id: str | None = None, orphans_only: bool = True) -> list[str]:
    """Remove swerve's containers (by label). By default only orphans (see `is_orphan`).
    Returns the names removed."""
    client = client or docker_client()
    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    removed = []
    for container in client.containers.list(all=True, filters={"label": label}):
        if orphans_only and not is_orphan(container.labels):
            continue
        container.remove(force=True, v=True)
        removed.append(container.name)
    return removed


