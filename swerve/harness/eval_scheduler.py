"""Environments for a parallel evaluation: opened ahead of need, closed in the
background, and all abandoned at once on an interrupt.

`EnvironmentScheduler.open` is the opener `evaluate_instance` uses: the next
instance's environment starts while this one runs its tests (so container start-up
overlaps test time instead of adding to it), every open environment is tracked, and
`close` hands it to a background closer so the worker moves on at once.
`test_slot` admits `workers` test runs at once: when the machine has a core the
test runs leave free, the evaluation runs one more instance than that, so the next
instance's patch and hidden tests are put in place while the current ones run their
tests (the shell round trips of those stages then overlap test time too). `abandon`
stops everything: no new environments, every open one closed without waiting for
the threads that use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

from swerve.harness.abandon import close_in_parallel, remove_own_containers
from swerve.harness.outcomes import EvaluationStopped
from swerve.schema import Task

ABANDON_WAIT_S = 3.0
"""On an interrupt: how long the workers get to notice that their environments are gone."""


def close_quietly(env) -> None:
    try:
        env.close()
    except Exception:
        pass


def _close_opened(future: Future) -> None:
    """A prefetched environment that finished opening after the run stopped."""
    if not future.cancelled() and future.exception() is None:
        close_quietly(future.result())


class EnvironmentScheduler:
    """Opens, prefetches, tracks and closes the environments of one evaluation run.

    `upcoming` lists, in order, the tasks that will need an environment (those whose
    patch is graded in one); each `open` starts the next unclaimed one ahead."""

    def __init__(self, opener: Callable, *, backend: str, limits, run_id: str, workers: int,
                 upcoming: Iterable[Task]) -> None:
        self._opener = opener
        self._backend = backend
        self._limits = limits
        self._run_id = run_id
        self._upcoming = list(upcoming)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self._active: list = []
        self._prefetched: dict[str, Future] = {}
        self._claimed: set[str] = set()
        self._test_slots = threading.BoundedSemaphore(max(1, workers))
        self._prefetch_pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="swerve-prefetch")
        self._close_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="swerve-close")

    @property
    def stopped(self) -> bool:
        return self.stop.is_set()

    def open(self, task: Task, backend: str, limits, run_id: str):
        """The environment for `task` (prefetched if it was); starts the next one ahead.
        Raises EvaluationStopped when the run stopped meanwhile."""
        with self.lock:
            self._claimed.add(task.instance_id)
            future = self._prefetched.pop(task.instance_id, None)
        self._prefetch_next()
        env = future.result() if future is not None else self._opener(task, backend, limits, run_id)
        with self.lock:
            self._active.append(env)
        if self.stop.is_set():
            self._untrack(env)
            env.close()
            raise EvaluationStopped()
        return env

    @contextmanager
    def test_slot(self) -> Iterator[None]:
        """Hold one of the `workers` test-run slots (waiting for one); raises
        EvaluationStopped when the run stops while waiting."""
        while not self._test_slots.acquire(timeout=0.2):
            if self.stop.is_set():
                raise EvaluationStopped()
        try:
            if self.stop.is_set():
                raise EvaluationStopped()
            yield
        finally:
            self._test_slots.release()

    def close(self, env) -> None:
        """Close `env` in the background."""
        self._untrack(env)
        self._close_pool.submit(close_quietly, env)

    def _prefetch_next(self) -> None:
        with self.lock:
            if self.stop.is_set():
                return
            for task in self._upcoming:
                if task.instance_id not in self._claimed and task.instance_id not in self._prefetched:
                    self._prefetched[task.instance_id] = self._prefetch_pool.submit(
                        self._opener, task, self._backend, self._limits, self._run_id)
                    return

    def _untrack(self, env) -> None:
        with self.lock:
            self._active[:] = [other for other in self._active if other is not env]

    def finish(self) -> None:
        """After the last instance: close what was prefetched and never claimed, and wait
        for the background closes."""
        with self.lock:
            leftovers = list(self._prefetched.values())
            self._prefetched.clear()
        self._prefetch_pool.shutdown(wait=True, cancel_futures=True)
        for future in leftovers:
            _close_opened(future)
        self._close_pool.shutdown(wait=True)

    def abandon(self, pending: Iterable[Future], workers: ThreadPoolExecutor) -> None:
        """Stop: no new work, nothing more written; close what is open without waiting
        for the threads using it; give them a few seconds to notice; remove any
        container of this run that this process started and nobody closed."""
        with self.lock:
            self.stop.set()
            opened = list(self._active)
            self._active.clear()
            leftovers = list(self._prefetched.values())
            self._prefetched.clear()
        workers.shutdown(wait=False, cancel_futures=True)
        self._prefetch_pool.shutdown(wait=False, cancel_futures=True)
        give_up = time.monotonic() + ABANDON_WAIT_S
        close_in_parallel(opened, wait_s=ABANDON_WAIT_S)
        wait([f for f in [*pending, *leftovers] if not f.cancelled()], timeout=max(0.0, give_up - time.monotonic()))
        for future in leftovers:  # closed now if opened by now, else once it opens
            future.add_done_callback(_close_opened)
        self._close_pool.shutdown(wait=False)
        remove_own_containers(self._run_id)
