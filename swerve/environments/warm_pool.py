"""A warm pool of environments: reset, not recreate.

Starting a container costs seconds; `Environment.reset()` puts the repository back
to its base commit in milliseconds. The pool keeps idle environments per task and
hands them out again; a broken one is closed and dropped, never handed out.

By default an environment given back is reset in the background (a small thread pool),
so the next episode on that task gets an already clean one while the caller goes on;
an environment is handed out only once its reset has finished, and `acquire` waits for
a reset in flight rather than opening a new container.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from swerve.environments.base import Limits
from swerve.schema import Task


class EnvPool:
    """Idle environments keyed by instance id, opened on demand.

    `max_idle_per_task` bounds what is kept warm (idle or being reset); `close()` closes
    everything the pool opened, idle, being reset or lent, so a stopped manager leaks no
    container. `reset_in_background=False` resets on `acquire` instead (the caller waits).
    `reset_threads` bounds the background resets running at once. `opener(task, backend,
    limits, run_id)` opens a new environment (default: swerve.environments.open_environment).
    """

    def __init__(self, *, backend: str = "auto", limits: Limits | None = None, run_id: str = "rl",
                 max_idle_per_task: int = 4, opener: Callable[..., Any] | None = None,
                 reset_in_background: bool = True, reset_threads: int = 2) -> None:
        self.backend = backend
        self.limits = limits or Limits()
        self.run_id = run_id
        self.max_idle_per_task = max_idle_per_task
        if opener is None:
            from swerve.environments import open_environment as opener
        self.opener = opener
        self._idle: dict[str, list[Any]] = defaultdict(list)
        self._all: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._reset_done = threading.Condition(self._lock)
        self._resetting: dict[str, int] = defaultdict(int)
        self._closed = False
        self.reset_in_background = reset_in_background
        self._resetter: ThreadPoolExecutor | None = None
        self._reset_threads = max(1, reset_threads)
        self.opened = 0
        self.reused = 0
        self.background_resets = 0

    def acquire(self, task: Task, *, reset: bool = True) -> Any:
        """An environment for `task` (a warm one when available, waiting for one whose
        background reset is under way), reset to its base commit unless `reset=False`
        (the caller resets it itself, e.g. SweEnv.reset; an environment reset in the
        background is clean either way)."""
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        raise RuntimeError("the environment pool is closed")
                    idle = self._idle.get(task.instance_id)
                    env = idle.pop() if idle else None
                    if env is not None or not self._resetting.get(task.instance_id):
                        break
                    self._reset_done.wait()
            if env is None:
                break
            try:
                if reset:
                    env.reset()
            except Exception:
                self.discard(env)
                continue
            self.reused += 1
            return env
        env = self.opener(task, self.backend, self.limits, self.run_id)
        with self._lock:
            self._all[id(env)] = env
            self.opened += 1
            closed = self._closed
        if closed:
            self.discard(env)
            raise RuntimeError("the environment pool is closed")
        return env

    def release(self, task: Task, env: Any) -> None:
        """Give an environment back: reset in the background (then idle), or kept idle
        and reset on the next acquire when `reset_in_background` is off."""
        key = task.instance_id
        with self._lock:
            keep = not self._closed and len(self._idle[key]) + self._resetting[key] < self.max_idle_per_task
            background = keep and self.reset_in_background
            if background:
                self._resetting[key] += 1
                if self._resetter is None:
                    self._resetter = ThreadPoolExecutor(max_workers=self._reset_threads,
                                                        thread_name_prefix="swerve-pool-reset")
                resetter = self._resetter
            elif keep:
                self._idle[key].append(env)
        if not keep:
            self.discard(env)
        elif background:
            resetter.submit(self._reset_then_idle, key, env)

    def _reset_then_idle(self, key: str, env: Any) -> None:
        """Background: reset `env`; only then is it idle (handed out again). A failed
        reset discards it; either way waiting `acquire` calls wake up."""
        try:
            env.reset()
            ok = True
        except Exception:
            ok = False
        with self._lock:
            self._resetting[key] -= 1
            ok = ok and not self._closed and id(env) in self._all
            if ok:
                self._idle[key].append(env)
                self.background_resets += 1
            self._reset_done.notify_all()
        if not ok:
            self.discard(env)

    def discard(self, env: Any) -> None:
        """Close an environment that must not be reused (broken, or its episode killed)."""
        with self._lock:
            self._all.pop(id(env), None)
            for idle in self._idle.values():
                if env in idle:
                    idle.remove(env)
        try:
            env.close()
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            envs = list(self._all.values())
            self._all.clear()
            self._idle.clear()
            resetter, self._resetter = self._resetter, None
            self._reset_done.notify_all()
        for env in envs:
            try:
                env.close()
            except Exception:
                pass
        if resetter is not None:
            resetter.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "EnvPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
