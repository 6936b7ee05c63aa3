"""How the docker backend's persistent shells are spoken to.

- `ExecSocketTransport`: the shell's stdin and stdout are a `docker exec`'s attach
  socket; every byte passes through the daemon (an `exec("true")` takes ~0.37 ms back to
  back, more while the daemon is busy with other execs: bench/env_latency.py).
- `FifoTransport`: the same exec starts a small `sh` wrapper that opens two FIFOs in a
  host folder bind-mounted read-only into the container (`FifoFolder`) and runs the shell
  on them; commands and output go through the kernel's pipes and never through the
  daemon (~0.18 ms back to back). The exec's socket still tells when the shell has gone: it ends
  when the wrapper exits. The FIFOs are unlinked as soon as both ends are open, so no
  process started later can open them by name, and the folder is read-only in the
  container, so nothing can be created in it.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import socket
import struct
import tempfile
import threading
import time

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
        self.pid = int(api.exec_inspect(self._exec_id).get("Pid") or 0)
        self._api = api

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, data: bytes) -> None:
        """Write all of `data`; the socket is only waited on when its buffer is full."""
        view = memoryview(data)
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                _, writable, _ = select.select([], [self._sock], [], 30)
                if not writable:
                    raise EOFError("shell stdin is not accepting input") from None
                continue
            view = view[sent:]

    def recv(self, timeout: float) -> bytes:
        out = self._take_frames()
        if out:
            return out
        if self._closed:
            raise EOFError("shell exited")
        try:
            readable, _, _ = select.select([self._sock], [], [], timeout)
        except (OSError, ValueError):  # closed by another thread (close())
            raise EOFError("shell transport closed") from None
        if not readable:
            return b""
        try:
            data = self._sock.recv(1 << 16)
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
        """Shut the socket down before closing it: a thread waiting in select() on it
        (a command in flight) wakes with EOF at once instead of at its timeout."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
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


class FifoTransport:
    """A shell on two FIFOs of a `FifoFolder`, started by one `docker exec` of an `sh`
    wrapper: the wrapper opens the FIFOs, announces itself on the output FIFO and runs
    `body` (shell code that starts the shell, possibly in a loop) with stdin and stdout
    on them, while its own stdout stays the exec's, which ends when the wrapper exits.

    Raises FifoUnavailable when the wrapper's announcement does not come within
    `handshake_s` (nothing is left behind then)."""

    def __init__(
        self, client, container_id: str, folder: FifoFolder, *, user: str, workdir: str, body: str,
        handshake_s: float = HANDSHAKE_S,
    ) -> None:
        name = secrets.token_hex(8)
        self._paths = [os.path.join(folder.host, f"{side}-{name}") for side in ("in", "out")]
        self._in = self._out = -1
        self._io = threading.Lock()
        self._exec: ExecSocketTransport | None = None
        self._exited = False
        self._stray = bytearray()
        try:
            for path in self._paths:
                os.mkfifo(path, 0o600)
                # The wrapper may run as the container's unprivileged user, whose uid is
                # not the host's; nobody else can reach the folder, and the names go at once.
                os.chmod(path, 0o666)
            # Read-write ends never block on open and never see EOF: the exec's socket
            # says when the shell has gone.
            self._in = os.open(self._paths[0], os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            self._out = os.open(self._paths[1], os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            ready = f"__swerve_fifo_{name}__"
            inside = [f"{IO_DIR}/{os.path.basename(path)}" for path in self._paths]
            wrapper = (
                f"exec 3<>{inside[0]} 4<>{inside[1]} || exit 97\n"
                f"printf '%s\\n' {ready} >&4\n"
                f"{{ {body}\n}} <&3 >&4 2>&4 3<&- 4>&-\n"
                "exit $?\n"
            )
            self._exec = ExecSocketTransport(
                client, container_id, user=user, workdir=workdir, env={}, argv=["sh", "-c", wrapper]
            )
            self.pid = self._exec.pid
            self._await(f"{ready}\n".encode(), handshake_s)
        except BaseException:
            self.close()
            raise
        self._unlink()

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

    def _unlink(self) -> None:
        for path in self._paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                with self._io:
                    view = view[os.write(self._fd("_in"), view) :]
            except BlockingIOError:
                if not self._wait(write=True, timeout=30):
                    raise EOFError("shell stdin is not accepting input") from None

    def recv(self, timeout: float) -> bytes:
        """The shell's output; once the wrapper has exited, what is left in the FIFO and
        then EOFError. What the wrapper itself writes (only its errors) is kept aside."""
        if self._exited:
            data = self._read_out()
            if data:
                return data
            raise EOFError("shell exited")
        assert self._exec is not None
        readable = self._wait(write=False, timeout=timeout)
        if "out" in readable:
            return self._read_out()
        if "exec" in readable:
            try:
                self._stray += self._exec.recv(0.0)
                del self._stray[:-4096]
            except (EOFError, OSError):
                self._exited = True
                return self.recv(0.0)
        return b""

    def _wait(self, *, write: bool, timeout: float) -> set[str]:
        """select() on the FIFO (and, for reading, the exec's socket). A descriptor that
        close() has closed meanwhile may wake it (or be reused by then): reads and writes
        happen under `_io`, after checking that the transport is still open."""
        fd = self._in if write else self._out
        if fd < 0:
            raise EOFError("shell transport closed")
        assert self._exec is not None
        try:
            if write:
                return {"in"} if select.select([], [fd], [], timeout)[1] else set()
            readable = select.select([fd, self._exec], [], [], timeout)[0]
        except (OSError, ValueError):
            raise EOFError("shell transport closed") from None
        return {"out" if item == fd else "exec" for item in readable}

    def _fd(self, name: str) -> int:
        """The descriptor, under `_io`; EOFError once close() has run."""
        fd = getattr(self, name)
        if fd < 0:
            raise EOFError("shell transport closed")
        return fd

    def _read_out(self) -> bytes:
        try:
            with self._io:
                return os.read(self._fd("_out"), 1 << 16)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        """Safe from another thread while a command is in flight: shutting the exec's
        socket wakes its select() at once; the FIFOs are closed under `_io`."""
        if self._exec is not None:
            self._exec.close()
        with self._io:
            fds, self._in, self._out = (self._in, self._out), -1, -1
            for fd in fds:
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
        self._unlink()
