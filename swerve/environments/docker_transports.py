"""How the docker backend's persistent shells are spoken to.

- `ExecSocketTransport`: the shell's stdin and stdout are a `docker exec`'s attach
  socket; every byte passes through the daemon (an `exec("true")` takes ~0.37 ms back to
  back, more while the daemon is busy with other execs: bench/env_latency.py).
- `FifoTransport`: a small `sh` wrapper opens a `FifoChannel`'s FIFOs in a host folder
  bind-mounted read-only into the container (`FifoFolder`) and runs the shell on them;
  commands and output go through the kernel's pipes and never through the daemon
  (~0.18 ms back to back). The wrapper is started by the container's own command
  (`prestart_command`: no exec at all) or by one exec (`FifoTransport.by_exec`). A third
  FIFO, held open by the wrapper alone, tells when the shell has gone: it closes when
  the wrapper exits. The FIFOs are unlinked as soon as both ends are open, so no
  process started later can open them by name, and the folder is read-only in the
  container, so nothing can be created in it.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import struct
import tempfile
import time

from swerve.environments.fd_guard import DescriptorGuard

IO_DIR = "/run/swerve-io"
"""Where a container sees its `FifoFolder` (read-only, and empty once the shells started)."""
FOLDER_PREFIX = "swerve-io-"
"""Host folders are `<tmp>/swerve-io-<owner pid>-<random>` (see `prune_fifo_folders`)."""
HANDSHAKE_S = 10.0
"""How long a new `FifoTransport` waits for the wrapper's first line before giving up."""


class FifoUnavailable(RuntimeError):
    """The FIFOs did not connect (a daemon on another machine or in a VM sees another
    folder under the same path); the caller falls back to the exec socket."""


class ExecSocketTransport:
    """A `bash` started with one `docker exec`, spoken to over the exec's raw socket.

    Without a TTY the daemon multiplexes stdout/stderr in frames of an 8-byte header
    (stream id, 3 zero bytes, big-endian length) and a payload; we read frames and
    pass the payloads on.
    """

    def __init__(
        self, client, container_id: str, *, user: str, workdir: str, env: dict[str, str], argv: list[str] | None = None
    ) -> None:
        api = client.api
        created = api.exec_create(
            container_id,
            argv or ["bash", "--noprofile", "--norc"],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            user=user,
            workdir=workdir,
            environment=env,
        )
        self._exec_id = created["Id"]
        wrapped = api.exec_start(self._exec_id, socket=True, demux=False)
        self._sock: socket.socket = getattr(wrapped, "_sock", wrapped)
        self._wrapped = wrapped
        self._sock.setblocking(False)
        self._pending = bytearray()
        self._closed = False
        self._guard = DescriptorGuard()
        self.pid = int(api.exec_inspect(self._exec_id).get("Pid") or 0)
        self._api = api

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, data: bytes) -> None:
        """Write all of `data`; the socket is only waited on when its buffer is full."""
        view = memoryview(data)
        while view:
            try:
                sent = self._guard.call(self._sock.send, view)
            except BlockingIOError:
                if not self._guard.wait([], [self._sock], 30)[1]:
                    raise EOFError("shell stdin is not accepting input") from None
                continue
            except OSError:
                raise EOFError("shell transport closed") from None
            view = view[sent:]

    def recv(self, timeout: float) -> bytes:
        out = self._take_frames()
        if out:
            return out
        if self._closed:
            raise EOFError("shell exited")
        if not self._guard.wait([self._sock], [], timeout)[0]:
            return b""
        try:
            data = self._guard.call(self._sock.recv, 1 << 16)
        except BlockingIOError:
            return b""
        except OSError:
            raise EOFError("shell transport closed") from None
        if not data:
            self._closed = True
            out = self._take_frames()
            if out:
                return out
            raise EOFError("shell exited")
        self._pending += data
        return self._take_frames()

    def _take_frames(self) -> bytes:
        out = bytearray()
        while len(self._pending) >= 8:
            stream, size = self._pending[0], struct.unpack(">I", self._pending[4:8])[0]
            if len(self._pending) < 8 + size:
                break
            if stream in (1, 2):
                out += self._pending[8 : 8 + size]
            del self._pending[: 8 + size]
        return bytes(out)

    def close(self) -> None:
        """Safe from another thread while a command is in flight: any wait wakes at once,
        and the socket is closed once no thread uses it (fd_guard). It is shut down
        first, so that the daemon ends the exec's streams without waiting for the close."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._guard.close(self._close_socket)

    def _close_socket(self) -> None:
        for closer in (getattr(self._wrapped, "close", None), self._sock.close):
            try:
                if closer:
                    closer()
            except Exception:
                pass


class FifoFolder:
    """A host folder for one container's FIFOs: `host` is bind-mounted read-only at
    `IO_DIR`. It sits inside a private (0700) temporary folder, so no other user of the
    host can reach it; itself 0711, so the container's users can open a FIFO they name
    but cannot list the folder."""

    def __init__(self) -> None:
        self._private = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
        self.host = os.path.join(self._private, "pipes")
        os.mkdir(self.host)
        os.chmod(self.host, 0o711)

    def volume(self) -> dict[str, dict[str, str]]:
        """The `volumes` argument of the docker SDK's `containers.run`."""
        return {self.host: {"bind": IO_DIR, "mode": "ro"}}

    def remove(self) -> None:
        shutil.rmtree(self._private, ignore_errors=True)


def prune_fifo_folders(tmp: str | None = None) -> list[str]:
    """Remove the FIFO folders of processes that are gone (killed before they could
    close their environments; what is left is an empty folder). Returns their paths."""
    from swerve.processes import process_alive

    tmp = tmp or tempfile.gettempdir()
    removed = []
    for name in sorted(os.listdir(tmp)):
        if not name.startswith(FOLDER_PREFIX):
            continue
        owner = name[len(FOLDER_PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or process_alive(int(owner)):
            continue
        path = os.path.join(tmp, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class FifoChannel:
    """The three FIFOs of one shell in a `FifoFolder`, made with the host's ends open:
    `in` and `out` carry the shell's input and output (read-write ends, which never block
    on open and never see EOF); `life` is held open by the shell's wrapper alone, so the
    host sees it close, and knows the shell has gone, when the wrapper exits. The kernel
    reports that close only once a writer has come, so a channel whose wrapper has not
    started yet is not taken for a dead one.

    `wrapper(body)` is the `sh` code that connects a shell to them inside the container:
    started by a `docker exec` (`FifoTransport.by_exec`) or by the container's own command
    (`prestart_command`), saving the exec."""

    def __init__(self, folder: FifoFolder) -> None:
        name = secrets.token_hex(8)
        self.ready = f"__swerve_fifo_{name}__"
        self._paths = {side: os.path.join(folder.host, f"{side}-{name}") for side in ("in", "out", "life")}
        self.fds = {side: -1 for side in self._paths}
        try:
            for side, path in self._paths.items():
                os.mkfifo(path, 0o600)
                # The wrapper may run as the container's unprivileged user, whose uid is
                # not the host's; nobody else can reach the folder, and the names go at once.
                os.chmod(path, 0o666)
                mode = os.O_RDONLY if side == "life" else os.O_RDWR
                self.fds[side] = os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise

    def wrapper(self, body: str) -> str:
        """Open the FIFOs, announce on `out`, run `body` on them; fd 5 (`life`) stays the
        wrapper's own."""
        inside = {side: f"{IO_DIR}/{os.path.basename(path)}" for side, path in self._paths.items()}
        return (
            f"exec 3<>{inside['in']} 4<>{inside['out']} 5>{inside['life']} || exit 97\n"
            f"printf '%s\\n' {self.ready} >&4\n"
            f"{{ {body}\n}} <&3 >&4 2>&4 3<&- 4>&- 5>&-\n"
            "exit $?\n"
        )

    def unlink(self) -> None:
        """Remove the names (once both ends are open, so nothing started later can open them)."""
        for path in self._paths.values():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        for side, fd in list(self.fds.items()):
            self.fds[side] = -1
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.unlink()


def prestart_command(keeper: list[str], channels: list[tuple[FifoChannel, str, str]]) -> list[str]:
    """The container's command: each `(channel, body, condition)`'s wrapper started in the
    background (where the shell condition holds), then `keeper` in place of the `sh`.
    Each wrapper is its own `sh -c` (its command line names only its own FIFOs), started
    through a subshell that exits at once, so that init adopts and reaps it."""
    starts = [
        f"{{ {condition}; }} && ( exec sh -c {shlex.quote(channel.wrapper(body))} & )" if condition
        else f"( exec sh -c {shlex.quote(channel.wrapper(body))} & )"
        for channel, body, condition in channels
    ]
    return ["sh", "-c", "; ".join([*starts, "exec " + " ".join(shlex.quote(word) for word in keeper)])]


class FifoTransport:
    """A shell on a `FifoChannel`: the wrapper opens the FIFOs, announces itself on the
    output FIFO and runs `body` (shell code that starts the shell, possibly in a loop)
    with stdin and stdout on them. The shell has gone when the wrapper has: `life` closes
    (and, for a wrapper started by `by_exec`, the exec's socket ends; what the wrapper
    itself writes there, only its errors, is kept for the error message).

    Raises FifoUnavailable when the wrapper's announcement does not come within
    `handshake_s` (the channel is closed then)."""

    def __init__(self, channel: FifoChannel, *, starter: ExecSocketTransport | None = None,
                 handshake_s: float = HANDSHAKE_S) -> None:
        self._channel = channel
        self._in, self._out, self._life = channel.fds["in"], channel.fds["out"], channel.fds["life"]
        self._guard = DescriptorGuard()
        self._exec = starter
        self._exited = False
        self._stray = bytearray()
        self.pid = starter.pid if starter is not None else 0
        try:
            self._await(f"{channel.ready}\n".encode(), handshake_s)
        except BaseException:
            self.close()
            raise
        channel.unlink()

    @classmethod
    def by_exec(cls, client, container_id: str, folder: FifoFolder, *, user: str, workdir: str, body: str,
                handshake_s: float = HANDSHAKE_S) -> FifoTransport:
        """A new channel whose wrapper one `docker exec` starts."""
        channel = FifoChannel(folder)
        try:
            starter = ExecSocketTransport(
                client, container_id, user=user, workdir=workdir, env={}, argv=["sh", "-c", channel.wrapper(body)]
            )
        except BaseException:
            channel.close()
            raise
        return cls(channel, starter=starter, handshake_s=handshake_s)

    def _await(self, line: bytes, timeout: float) -> None:
        got = bytearray()
        deadline = time.monotonic() + timeout
        while not got.endswith(line):
            left = deadline - time.monotonic()
            try:
                chunk = self.recv(left) if left > 0 else None
            except EOFError:
                chunk = None
            if chunk is None:
                said = self._stray.decode(errors="replace").strip()[-300:]
                raise FifoUnavailable(
                    "the shell's FIFOs did not connect"
                    + (f" (the wrapper said: {said})" if said else f" within {timeout:g}s")
                )
            got += chunk
            if len(got) > len(line) + 4096:
                raise FifoUnavailable(f"unexpected output on the shell's FIFO: {bytes(got[:200])!r}")

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._guard.call(os.write, self._in, view) :]
            except BlockingIOError:
                if not self._guard.wait([], [self._in], 30)[1]:
                    raise EOFError("shell stdin is not accepting input") from None

    def recv(self, timeout: float) -> bytes:
        """The shell's output; once the wrapper has exited, what is left in the FIFO and
        then EOFError."""
        if self._exited:
            data = self._read_out()
            if data:
                return data
            raise EOFError("shell exited")
        watched = [self._out, self._life] + ([self._exec] if self._exec is not None else [])
        readable = self._guard.wait(watched, [], timeout)[0]
        if self._out in readable:
            return self._read_out()
        if self._life in readable and self._life_ended():
            self._exited = True
            return self.recv(0.0)
        if self._exec is not None and self._exec in readable:
            try:
                self._stray += self._exec.recv(0.0)
                del self._stray[:-4096]
            except (EOFError, OSError):
                self._exited = True
                return self.recv(0.0)
        return b""

    def _life_ended(self) -> bool:
        """Whether `life` reads as closed (the wrapper, its only writer, has exited)."""
        try:
            return self._guard.call(os.read, self._life, 1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _read_out(self) -> bytes:
        try:
            return self._guard.call(os.read, self._out, 1 << 16)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        """Safe from another thread while a command is in flight: any wait wakes at once,
        and the FIFOs and the exec's socket are closed once no thread uses them (fd_guard)."""
        self._guard.close(self._close_all)

    def _close_all(self) -> None:
        if self._exec is not None:
            self._exec.close()
        self._channel.close()
