"""A persistent bash session over a byte pipe, shared by the docker and local backends.

One long-lived `bash` reads commands on stdin, so a command round-trip costs a pipe
write and read instead of a new process (`docker exec`) per command; the working
directory and exported variables persist between commands. Each command is sent
as an ANSI-C quoted `eval` (a syntax error in the command cannot swallow the end
marker) followed by an end marker carrying a per-session random nonce.

On timeout the backend's `kill_children` kills everything the shell started; if
the shell itself is stuck (a busy builtin loop, `exit`), the session is restarted
and the result says so.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from typing import Protocol

from swerve.errors import InfraError
from swerve.schema import ExecResult

TIMEOUT_EXIT_CODE = 124
KILL_GRACE_S = 3.0


def kill_all_but_snippet(spare: str) -> str:
    """Shell code that kills every process it can see except pid 1, the pids in
    `spare` (space separated) and the shell running it, using only builtins (it
    must work when the pid limit is reached). A fork bomb refills a pid as soon
    as it is killed, so processes are first frozen with SIGSTOP, pass after pass,
    until two passes see the same set of pids; then everything is killed. The
    whole sequence runs twice to catch a child forked during the last pass."""
    each = 'for __d in /proc/[0-9]*; do __p=${__d#/proc/}; case "$__s" in *" $__p "*) ;; *) kill -%s $__p 2>/dev/null;; esac; done'
    freeze = (
        '__prev=; for __r in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do __cur=(/proc/[0-9]*); '
        '[ "${__cur[*]}" = "$__prev" ] && break; __prev="${__cur[*]}"; ' + each % "STOP" + "; done"
    )
    return f'__s=" 1 {spare} $$ "; for __k in 1 2; do {freeze}; {each % "KILL"}; done; unset __s __prev __cur __r __k __d __p; true'


class Transport(Protocol):
    """Bytes to and from a running `bash` process."""

    pid: int

    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes:
        """Up to one chunk of output; b"" when nothing came within `timeout`.
        Raises EOFError when the shell has gone."""

    def close(self) -> None: ...


_ANSI_C_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(32), 127)},
    ord("\\"): "\\\\",
    ord("'"): "\\'",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
}


def ansi_c_quote(text: str) -> str:
    """Quote `text` as bash's $'...' so that any command survives as one word (one
    `str.translate`: the restore script and diff command are quoted on every reset/step)."""
    return "$'" + text.translate(_ANSI_C_ESCAPES) + "'"


class OutputCapture:
    """Collects a command's output with a byte cap: head and tail kept in memory; once
    the cap is passed the output is also spooled to a file, up to `spool_limit` bytes."""

    def __init__(self, limit: int, spool_dir: str | None, spool_limit: int = 8 << 20) -> None:
        self.limit = max(limit, 64)
        self.spool_dir = spool_dir
        self.spool_limit = spool_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.spooled = 0
        self.spool_path: str | None = None
        self._spool = None

    def add(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        if self._spool is None:
            if len(self.head) + len(data) <= self.limit:
                self.head += data
                return
            fd, self.spool_path = tempfile.mkstemp(prefix="swerve-output-", suffix=".log", dir=self.spool_dir)
            self._spool = os.fdopen(fd, "wb")
            self._write_spool(bytes(self.head))
            combined = self.head + data
            keep = self.limit // 2
            self.head, self.tail = bytearray(combined[:keep]), bytearray(combined[keep:])
        else:
            self.tail += data
        self._write_spool(data)
        excess = len(self.tail) - self.limit // 2
        if excess > 0:
            del self.tail[:excess]

    def _write_spool(self, data: bytes) -> None:
        room = self.spool_limit - self.spooled
        if room > 0 and self._spool is not None:
            self._spool.write(data[:room])
            self.spooled += min(room, len(data))

    def finish(self) -> tuple[str, bool]:
        if self._spool is None:
            return self.head.decode("utf-8", errors="replace"), False
        self._spool.close()
        cut = self.total - len(self.head) - len(self.tail)
        kept = "full output" if self.spooled >= self.total else f"its first {self.spooled} bytes"
        note = f"\n[... {cut} bytes cut; {kept} in {self.spool_path} until the next command ...]\n"
        text = self.head.decode("utf-8", errors="replace") + note + self.tail.decode("utf-8", errors="replace")
        return text, True


class ShellSession:
    """A persistent bash behind `Transport`, restarted when it dies."""

    def __init__(
        self,
        start: Callable[[], Transport],
        kill_children: Callable[[int], None],
        *,
        output_limit: int,
        default_timeout: float,
        spool_dir: str | None = None,
        init_script: str = "",
        spool_limit: int = 8 << 20,
        respawns: bool = False,
    ) -> None:
        self._start = start
        self._kill_children = kill_children
        self.output_limit = output_limit
        self.default_timeout = default_timeout
        self.spool_dir = spool_dir
        self.spool_limit = spool_limit
        self.respawns = respawns
        self.parent_pid = 0
        self._spools: list[str] = []
        self.init_script = init_script
        self._nonce = secrets.token_hex(8)
        self._marker = f"__SE{self._nonce}".encode()
        self._marker_re = re.compile(re.escape(self._marker) + rb" (-?\d+)\n")
        self._transport: Transport | None = None
        self.inner_pid = 0

    def _ensure(self) -> Transport:
        if self._transport is None:
            self._start_fresh()
        assert self._transport is not None
        return self._transport

    def _start_fresh(
        self, prelude: str = "", prelude_timeout: float = 300.0, *, same_transport: bool = False
    ) -> ExecResult | None:
        """Start a new shell (on the current transport when `same_transport`: its other
        end has started a new bash); run `prelude` first (on failure its output is returned
        with a non-zero status and nothing else runs), then learn the shell's pid and run the start-up script, all
        in one round trip."""
        if not same_transport:
            self._transport = self._start()
        else:
            # The first bytes may meet the dying shell or the respawner's notice of its
            # death: a throwaway command takes them, and the stream is in step after it.
            self._run("true", timeout=60, limit=0)
            if self._transport is None:
                self._transport = self._start()
        self.inner_pid = 0
        # One round trip: the prelude; when it succeeded, the shell's pids and the start-up
        # script's output and status, each after a line tagged with the session's nonce.
        tag = f"__SWERVE_START_{self._nonce}__"
        script = (
            (f"{prelude}\n[ $? = 0 ] && " if prelude else "")
            + f"{{ printf '\\n%s %s %s\\n' {tag} \"$$\" \"$PPID\"; {self.init_script or 'true'}\n"
            f"printf '\\n%s %s\\n' {tag} $?; }}"
        )
        result = self._run(script, timeout=prelude_timeout if prelude else 60, limit=self.output_limit)
        head, found, rest = result.output.partition(f"\n{tag} ")
        if not found or self._transport is None:
            if prelude:
                return result  # the prelude failed (or its shell exited): the caller reports it
            raise InfraError(f"the shell did not start ({result.exit_code}): {result.output[-500:]}")
        pids, _, rest = rest.partition("\n")
        started, _, status = rest.rpartition(f"\n{tag} ")
        words = pids.split()
        self.inner_pid, self.parent_pid = (int(words[0]), int(words[1])) if len(words) == 2 and "".join(words).isdigit() else (0, 0)
        if status.strip() != "0":
            raise InfraError(f"shell start-up script failed ({status.strip()}): {started[-500:]}")
        return result.model_copy(update={"output": head})

    def fresh(self, prelude: str, timeout: float = 300.0) -> ExecResult:
        """Replace the shell by a new process (nothing the old one defined, trapped or
        exported survives; the caller has killed the old one) whose first command is
        `prelude`. The result carries the prelude's output; its exit code is 0 when the
        prelude succeeded and non-zero (not necessarily the prelude's own status) when
        it failed, in which case the start-up script did not run."""
        if self.respawns and self._transport is not None:
            self._drain()
            if self._transport is not None:
                result = self._start_fresh(prelude, timeout, same_transport=True)
                assert result is not None
                return result
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        result = self._start_fresh(prelude, timeout)
        assert result is not None
        return result

    def _drain(self) -> None:
        """Drop output the killed shell's processes left in the pipe."""
        try:
            while self._transport is not None and self._transport.recv(0.0):
                pass
        except EOFError:
            self._transport = None

    def _keep_spool(self, capture: OutputCapture) -> None:
        if capture.spool_path:
            self._spools.append(capture.spool_path)

    def discard_spools(self) -> None:
        """Delete the host-side output spools of earlier commands."""
        spools, self._spools = self._spools, []
        for path in spools:
            try:
                os.unlink(path)
            except OSError:
                pass

    def restart(self) -> None:
        self.stop()
        self._ensure()

    def stop(self) -> None:
        """Kill the shell and everything it started, and close its transport (a shell
        stuck in a builtin loop would otherwise spin on after its replacement started)."""
        self.discard_spools()
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                self._kill_children(0)
            except Exception:
                pass
            transport.close()

    def run(self, cmd: str, timeout: float | None = None, *, limit: int | None = None) -> ExecResult:
        """Run `cmd`; `limit=0` means no output cap (for file reads). The output spool of
        the previous command, if any, is deleted first."""
        self.discard_spools()
        self._ensure()
        return self._run(cmd, timeout=timeout or self.default_timeout, limit=self.output_limit if limit is None else limit)

    def _run(self, cmd: str, *, timeout: float, limit: int) -> ExecResult:
        transport = self._transport
        assert transport is not None
        # Short on purpose: bash reads a pipe one byte per read(), ~1 us a byte.
        script = f"eval {ansi_c_quote(cmd + chr(10))}</dev/null 2>&1;printf '{self._marker.decode()} %d\\n' $?\n"
        capture = OutputCapture(limit if limit > 0 else 1 << 62, self.spool_dir, self.spool_limit)
        window = bytearray()
        started = time.monotonic()
        deadline = started + timeout
        timed_out = False
        try:
            transport.send(script.encode())
            while True:
                now = time.monotonic()
                if not timed_out and now >= deadline:
                    timed_out = True
                    self._kill_children(self.inner_pid)
                    deadline = now + KILL_GRACE_S
                elif timed_out and now >= deadline:
                    raise TimeoutError
                chunk = transport.recv(max(0.0, deadline - now))
                if not chunk:
                    continue
                window += chunk
                match = self._marker_re.search(window)
                if match:
                    capture.add(bytes(window[: match.start()]))
                    exit_code = int(match.group(1))
                    break
                keep = len(self._marker) + 32
                if len(window) > keep:
                    capture.add(bytes(window[:-keep]))
                    del window[:-keep]
        except (EOFError, TimeoutError, OSError) as exc:
            capture.add(bytes(window))
            text, truncated = capture.finish()
            self._keep_spool(capture)
            self.stop()
            reason = "timed out and the shell did not recover" if timed_out else f"the shell exited ({type(exc).__name__})"
            return ExecResult(
                output=text + f"\n[swerve: {reason}; a new shell was started: cwd and variables were reset]\n",
                exit_code=TIMEOUT_EXIT_CODE if timed_out else 255,
                duration_s=time.monotonic() - started,
                timed_out=timed_out,
                truncated=truncated,
                output_bytes=capture.total,
                full_output_path=capture.spool_path,
                shell_restarted=True,
            )
        text, truncated = capture.finish()
        self._keep_spool(capture)
        if timed_out:
            text += f"\n[swerve: command timed out after {timeout:g}s and was killed]\n"
        return ExecResult(
            output=text,
            exit_code=TIMEOUT_EXIT_CODE if timed_out else exit_code,
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            truncated=truncated,
            output_bytes=capture.total,
            full_output_path=capture.spool_path,
        )
