"""Closing a shell's descriptors from one thread while another waits on them.

An environment is closed from any thread (`RolloutManager.kill_worker`, a pool's
`discard`, a timeout) while its command thread may be inside `select()` on the shell's
output. Closing a descriptor does not wake a `select()` that waits on it, and once it is
closed the kernel hands its number to the next file any thread opens: a pipe of another
environment, a socket. A waiter that goes round its loop again then waits on, or reads
from, a stranger's file, and a killed worker sat out its command's whole timeout that way.

`DescriptorGuard` closes that gap. Every wait, read and write goes through it, under its
lock, and every wait also watches the guard's own wake-up pipe. `close(closer)` first
writes to the wake-up pipe (any wait returns at once, and every later one raises
EOFError), then takes the lock and only then runs `closer`, which closes the descriptors:
by then no thread is using them, and none will again.

Two details make that hold in every case:
- The lock is re-entrant: a signal handler (cleanup's SIGTERM handler closes every
  environment) runs on the main thread, possibly while that very thread waits inside the
  guard; its close() must not wait for itself.
- The wake-up pipe is closed only when the guard is garbage (nobody can be waiting on it
  then), so a wait that resumes after such a handler still finds it, readable.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DescriptorGuard:
    """The lifetime of a transport's descriptors; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # held by every wait, read and write, and by closer()
        self._once = threading.Lock()  # taken, never released, by the one close() that runs
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closing = False

    def wait(self, read: list, write: list, timeout: float) -> tuple[list, list]:
        """`select()` on `read` and `write` (descriptors or objects with fileno()) for up to
        `timeout` seconds; returns the ready ones of each. EOFError once close() has begun."""
        with self._lock:
            if self._closing:
                raise EOFError("shell transport closed")
            try:
                readable, writable, _ = select.select([*read, self._wake_read], write, [], timeout)
            except (OSError, ValueError):
                raise EOFError("shell transport closed") from None
        if self._wake_read in readable or self._closing:
            raise EOFError("shell transport closed")
        return readable, writable

    def call(self, operation: Callable[..., T], *args: Any) -> T:
        """`operation(*args)` (a read or write on the descriptors) while they are held
        open; EOFError once close() has begun."""
        with self._lock:
            if self._closing:
                raise EOFError("shell transport closed")
            return operation(*args)

    def close(self, closer: Callable[[], None]) -> None:
        """Wake every wait, then run `closer` once no other thread uses the descriptors.
        Idempotent: `closer` runs on the first call only (an atomic non-blocking acquire
        picks it, so a signal handler's call cannot make it run twice)."""
        if not self._once.acquire(blocking=False):
            return
        self._closing = True
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass
        with self._lock:
            closer()

    def __del__(self) -> None:
        for fd in (getattr(self, "_wake_read", -1), getattr(self, "_wake_write", -1)):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
