"""swerve.interrupts: SIGINT / SIGTERM become `Interrupted` with the exit status a
shell expects (130 / 143), handlers are restored, and a program whose worker thread
never returns still exits once the deadline passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from swerve.interrupts import Interrupted, exit_code_of, signal_name, stoppable


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_raise_interrupted_inside_and_handlers_come_back(signum, code):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as stopped:
        with stoppable():
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the handler runs between bytecodes of the main thread
                pass
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert exit_code_of(stopped.value) == code and signal_name(stopped.value) == signal.Signals(signum).name
    assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before


def test_a_plain_keyboard_interrupt_is_130():
    assert exit_code_of(KeyboardInterrupt()) == 130 and signal_name(KeyboardInterrupt()) == "SIGINT"


STUCK = textwrap.dedent("""
    import os, signal, threading
    from swerve.interrupts import Interrupted, arm_forced_exit, stoppable
    arm_forced_exit(1.0)
    threading.Thread(target=threading.Event().wait).start()  # a worker that never returns, not a daemon
    try:
        with stoppable():
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(60)
    except Interrupted as stopped:
        print("interrupted", stopped.exit_code, flush=True)
        raise SystemExit(stopped.exit_code)
""")


def test_the_deadline_ends_a_program_whose_worker_never_returns():
    done = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "interrupted 143", done.stderr
    assert done.returncode == 143


OUTSIDE = textwrap.dedent("""
    import os, signal, threading
    from swerve.interrupts import arm_forced_exit
    arm_forced_exit()
    os.kill(os.getpid(), signal.SIGINT)
    threading.Event().wait(60)
""")


def test_outside_any_stoppable_region_an_armed_program_exits_130_without_a_traceback():
    done = subprocess.run([sys.executable, "-c", OUTSIDE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and "Traceback" not in done.stderr
