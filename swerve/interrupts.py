"""SIGINT and SIGTERM as one clean stop.

Long-running work (`evaluate`, `run_batch`, training) runs inside `stoppable()`:
either signal raises `Interrupted` (a KeyboardInterrupt) in the main thread, so the
work stops scheduling, abandons what is in flight and re-raises; the command line
exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM).

The command line also arms a deadline (`arm_forced_exit`): if the process is still
alive a few seconds after the first signal (a worker thread stuck in a long call),
the open environments are closed and the process exits anyway; a second signal
does the same at once. Library callers get no forced exit: a notebook that catches
KeyboardInterrupt keeps running.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM)

_forced_exit_after: float | None = None
_first_signal: int | None = None
_state_lock = threading.Lock()


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `exit_code` is what the process should exit with."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code_of(exc: BaseException) -> int:
    """130 for Ctrl-C (a plain KeyboardInterrupt), 128 + the signal for `Interrupted`."""
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


def signal_name(exc: BaseException) -> str:
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


def arm_forced_exit(after_s: float = 6.0) -> None:
    """Command-line programs: exit at the latest `after_s` seconds after the first
    SIGINT/SIGTERM, and at once on a second one. Also installs a process-wide handler
    so that a signal outside any `stoppable()` region exits with 128 + signum."""
    global _forced_exit_after
    _forced_exit_after = after_s
    install_exit_handlers()


def install_exit_handlers() -> None:
    """Once armed, from the main thread: SIGINT / SIGTERM outside a `stoppable()`
    region exit with 128 + signum (open environments are closed at exit). Does
    nothing unless `arm_forced_exit` was called (a test process keeps its own)."""
    if _forced_exit_after is None or threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        signal.signal(signum, _exit_handler)


def _exit_handler(signum: int, frame) -> None:
    _note_signal(signum)
    raise SystemExit(128 + signum)


def _raise_handler(signum: int, frame) -> None:
    _note_signal(signum)
    raise Interrupted(signum)


def _note_signal(signum: int) -> None:
    """Start the deadline on the first signal; exit now on the second (when armed)."""
    global _first_signal
    with _state_lock:
        first = _first_signal is None
        if first:
            _first_signal = signum
    if _forced_exit_after is None:
        return
    if not first:
        force_exit(128 + (_first_signal or signum), wait_s=2.0)
    threading.Thread(target=_deadline, args=(128 + signum, _forced_exit_after), name="swerve-forced-exit",
                     daemon=True).start()


def _deadline(code: int, after_s: float) -> None:
    threading.Event().wait(after_s)
    force_exit(code, wait_s=max(0.5, 9.0 - after_s))


def force_exit(code: int, wait_s: float = 1.5) -> None:
    """Close the open environments (for at most `wait_s`) and exit now, without
    waiting for worker threads; a container left behind carries this dead pid as its
    owner and is removed by the next run (`swerve env prune` too)."""
    if os.environ.get("SWERVE_DEBUG_STOP"):  # which threads did not stop in time, and where
        import faulthandler

        faulthandler.dump_traceback(all_threads=True)
    cleanup = sys.modules.get("swerve.environments.cleanup")
    if cleanup is not None:
        closer = threading.Thread(target=cleanup.close_all, name="swerve-close-all", daemon=True)
        closer.start()
        closer.join(timeout=wait_s)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def exit_if_armed(code: int) -> None:
    """For the command line once the interrupted work is abandoned and what finished is
    saved: exit now rather than wait for worker threads still inside their last call.
    Returns (does nothing) unless `arm_forced_exit` was called."""
    if _forced_exit_after is not None:
        force_exit(code, wait_s=1.0)


@contextmanager
def stoppable() -> Iterator[None]:
    """While inside: SIGINT and SIGTERM raise `Interrupted` in the main thread (the
    previous handlers come back on exit). Elsewhere than the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    for signum in HANDLED:
        signal.signal(signum, _raise_handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
