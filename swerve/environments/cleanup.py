"""Closes every open environment at interpreter exit and on SIGINT/SIGTERM, so no
container outlives the process that started it."""

from __future__ import annotations

import atexit
import signal
import threading
import weakref

_open: "weakref.WeakSet" = weakref.WeakSet()
_lock = threading.Lock()
_installed = False
_signal_installed = False


def register(env) -> None:
    with _lock:
        _open.add(env)
    _install_handlers()


def unregister(env) -> None:
    with _lock:
        _open.discard(env)


def open_environments() -> list:
    """The environments opened in this process and not closed yet."""
    with _lock:
        return list(_open)


def close_all() -> None:
    with _lock:
        envs = list(_open)
    for env in envs:
        try:
            env.close()
        except Exception:
            pass


def _install_handlers() -> None:
    """atexit once; the SIGTERM handler as soon as an environment is opened on the
    main thread (signal handlers can only be installed there)."""
    global _installed, _signal_installed
    if not _installed:
        _installed = True
        atexit.register(close_all)
    if _signal_installed or threading.current_thread() is not threading.main_thread():
        return
    _signal_installed = True
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        close_all()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    if previous in (signal.SIG_DFL, None) or callable(previous):
        signal.signal(signal.SIGTERM, on_term)


def install_signal_handlers() -> None:
    """Call from the main thread of a program that opens environments in worker
    threads, so SIGTERM closes them too."""
    _install_handlers()
