"""Closing a shell from another thread while a command waits on it (swerve.environments.
fd_guard): the wait ends at once, and never goes on to wait on or read from a descriptor
number the kernel has meanwhile handed to another file. Before the guard, a killed rollout
worker on the scratch backend sat out its command's whole timeout in 19 runs of 20."""

from __future__ import annotations

import os
import threading

import pytest

from swerve.environments.fd_guard import DescriptorGuard
from swerve.environments.local import PipeTransport, descendants
from swerve.environments.shell import ShellSession


def test_close_wakes_a_wait_then_closes_and_every_later_use_is_eof():
    guard = DescriptorGuard()
    read_end, write_end = os.pipe()
    outcome: list[str] = []

    def wait() -> None:
        try:
            guard.wait([read_end], [], 600)
            outcome.append("returned")
        except EOFError:
            outcome.append("eof")

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    _wait_until_asleep(waiter)  # inside select(): nothing else in wait() blocks
    closed: list[int] = []

    def close_both() -> None:
        for fd in (read_end, write_end):
            os.close(fd)
            closed.append(fd)

    guard.close(close_both)
    waiter.join(60)
    assert not waiter.is_alive() and outcome == ["eof"]
    assert closed == [read_end, write_end]
    guard.close(lambda: closed.append(-1))
    assert closed == [read_end, write_end], "the closer runs once"
    with pytest.raises(EOFError):
        guard.wait([], [], 0)
    with pytest.raises(EOFError):
        guard.call(os.getpid)


def test_a_guard_dropped_without_close_releases_its_wake_up_pipe():
    import gc

    before = len(os.listdir("/proc/self/fd"))
    guards = [DescriptorGuard() for _ in range(50)]
    assert len(os.listdir("/proc/self/fd")) >= before + 100
    del guards
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before


SIGNAL_SCRIPT = """
import os, signal
from swerve.environments.fd_guard import DescriptorGuard

guard = DescriptorGuard()
read_end, write_end = os.pipe()
closed = []

def on_alarm(signum, frame):  # what cleanup's SIGTERM handler does: close, then exit
    guard.close(lambda: closed.append(True))
    raise SystemExit(3 if closed else 4)

signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.2)
guard.wait([read_end], [], 600)
"""


def test_a_signal_handler_closes_the_guard_its_own_thread_is_waiting_in():
    """cleanup's SIGTERM handler closes every environment on the main thread, which may be
    waiting inside that very guard: the close must go through, not wait for itself."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr


def test_close_waits_for_a_read_in_progress_before_closing():
    guard = DescriptorGuard()
    reading, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_read() -> None:
        reading.set()
        release.wait(60)
        order.append("read done")

    def read() -> None:
        guard.call(slow_read)

    reader = threading.Thread(target=read)
    reader.start()
    assert reading.wait(60)
    closer = threading.Thread(target=guard.close, args=(lambda: order.append("closed"),))
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and order == [], "the descriptors stay open while a read uses them"
    release.set()
    for thread in (reader, closer):
        thread.join(60)
    assert order == ["read done", "closed"]


@pytest.mark.parametrize("round_", range(5))
def test_stopping_a_local_shell_ends_its_running_command_while_descriptors_are_reused(tmp_path, descriptor_churn,
                                                                                       round_):
    session = ShellSession(
        lambda: PipeTransport(["bash", "--noprofile", "--norc"], cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}),
        lambda _pid: None, output_limit=1000, default_timeout=600,
    )
    assert session.run("echo ready").output.strip() == "ready"
    results = []
    worker = threading.Thread(target=lambda: results.append(session.run("sleep 600", timeout=900)), daemon=True)
    worker.start()
    _wait_for_sleep_under(session._transport.pid)
    descriptor_churn()
    session.stop()
    worker.join(60)
    assert not worker.is_alive(), "stop() must end the command waiting on the shell"
    assert results[0].shell_restarted and not results[0].timed_out, results[0]


def _wait_for_sleep_under(pid: int) -> None:
    """Until the shell `pid` runs `sleep` (the command is in flight)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        for child in descendants(pid):
            try:
                with open(f"/proc/{child}/cmdline", "rb") as handle:
                    if handle.read().startswith(b"sleep"):
                        return
            except OSError:
                pass
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.01)


def _wait_until_asleep(thread: threading.Thread) -> None:
    """Until `thread` sleeps in the kernel (its state in /proc is S)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        with open(f"/proc/self/task/{thread.native_id}/stat", "rb") as handle:
            if handle.read().rsplit(b")", 1)[1].split()[0] == b"S":
                return
        assert time.monotonic() < deadline, "the thread never went to sleep"
        time.sleep(0.005)
