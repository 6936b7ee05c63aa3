"""A warm pool of environments: reset, not recreate.

Starting a container costs seconds; `Environment.reset()` puts the repository back
to its base commit in milliseconds. The pool keeps idle environments per task and
hands them out again; a broken one is closed and dropped, never handed out.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Callable

from swerve.environments.base import Limits
from swerve.schema import Task


def _open_environment(task: Task, backend: str, limits: Limits, run_id: str) -> Any:
    """`swerve.environments.open_environment`, looked up when called (so it can be swapped)."""
    import swerve.environments

    return swerve.environments.open_environment(task, backend, limits, run_id)


class EnvPool:
    """Idle environments keyed by instance id, opened on demand.

    `max_idle_per_task` bounds what is kept warm; `close()` closes everything the
    pool opened, idle or lent, so a stopped manager leaks no container.
    """

    def __init__(self, *, backend: str = "auto", limits: Limits | None = None, run_id: str = "rl",
                 max_idle_per_task: int = 4, opener: Callable[..., Any] | None = None) -> None:
        self.backend = backend
        self.limits = limits or Limits()
        self.run_id = run_id
        self.max_idle_per_task = max_idle_per_task
        self.opener = opener or _open_environment
        self._idle: dict[str, list[Any]] = defaultdict(list)
        self._all: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0
        self.reused = 0

    def acquire(self, task: Task, *, reset: bool = True) -> Any:
        """An environment for `task` (a warm one when available), reset to its base
        commit unless `reset=False` (the caller resets it itself, e.g. SweEnv.reset)."""
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the environment pool is closed")
                idle = self._idle.get(task.instance_id)
                env = idle.pop() if idle else None
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
        """Give an environment back; it is reset on the next acquire."""
        with self._lock:
            keep = not self._closed and len(self._idle[task.instance_id]) < self.max_idle_per_task
            if keep:
                self._idle[task.instance_id].append(env)
        if not keep:
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
        for env in envs:
            try:
                env.close()
            except Exception:
                pass

    def __enter__(self) -> "EnvPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
