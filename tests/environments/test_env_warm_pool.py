"""EnvPool's background reset: an environment given back is reset off the caller's path,
and is never handed out again before that reset has finished (fake environments whose
reset blocks until the test lets it go; no timing thresholds)."""

from __future__ import annotations

import threading

import pytest

from swerve.environments.warm_pool import EnvPool
from swerve.schema import Task

TASK = Task(instance_id="pool-task", repo="o/r")
OTHER = Task(instance_id="pool-other", repo="o/r")


class GatedEnv:
    """Dirty after use; `reset()` waits for `gate`, then cleans it (or fails)."""

    def __init__(self, task, *, fail_reset: bool = False) -> None:
        self.task = task
        self.dirty = False
        self.closed = False
        self.resets = 0
        self.fail_reset = fail_reset
        self.gate = threading.Event()
        self.reset_started = threading.Event()

    def use(self) -> None:
        self.dirty = True

    def reset(self) -> None:
        self.reset_started.set()
        assert self.gate.wait(30), "the test never released the reset"
        if self.fail_reset:
            raise RuntimeError("reset failed")
        self.resets += 1
        self.dirty = False

    def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self, **env_kwargs) -> None:
        self.opened: list[GatedEnv] = []
        self.env_kwargs = env_kwargs

    def __call__(self, task, backend, limits, run_id):
        env = GatedEnv(task, **self.env_kwargs)
        self.opened.append(env)
        return env


def _acquire_in_thread(pool: EnvPool, task: Task) -> tuple[threading.Thread, list]:
    got: list = []
    thread = threading.Thread(target=lambda: got.append(pool.acquire(task, reset=False)), daemon=True)
    thread.start()
    return thread, got


def test_an_environment_given_back_is_reset_in_the_background_and_handed_out_only_when_clean():
    opener = Opener()
    pool = EnvPool(opener=opener)
    try:
        env = pool.acquire(TASK, reset=False)
        env.use()
        pool.release(TASK, env)  # returns at once although the reset is held
        assert env.reset_started.wait(30), "release started a background reset"
        thread, got = _acquire_in_thread(pool, TASK)
        thread.join(0.2)
        assert thread.is_alive() and got == [], "acquire waits for the reset in flight instead of handing it out"
        env.gate.set()
        thread.join(30)
        assert got == [env] and not env.dirty and env.resets == 1
        assert len(opener.opened) == 1, "waiting for the reset is preferred to opening a new environment"
        assert pool.reused == 1 and pool.background_resets == 1
    finally:
        env.gate.set()
        pool.close()


def test_another_task_is_not_held_up_by_a_reset_in_flight():
    opener = Opener()
    pool = EnvPool(opener=opener)
    try:
        env = pool.acquire(TASK, reset=False)
        env.use()
        pool.release(TASK, env)
        other = pool.acquire(OTHER, reset=False)
        assert other is not env and other.task is OTHER
    finally:
        env.gate.set()
        pool.close()


def test_a_failed_background_reset_discards_the_environment():
    opener = Opener(fail_reset=True)
    pool = EnvPool(opener=opener)
    try:
        env = pool.acquire(TASK, reset=False)
        env.use()
        pool.release(TASK, env)
        thread, got = _acquire_in_thread(pool, TASK)
        env.gate.set()
        thread.join(30)
        assert env.closed, "an environment whose reset failed is closed"
        assert got and got[0] is not env and len(opener.opened) == 2, "a new environment replaces it"
    finally:
        for opened in opener.opened:
            opened.gate.set()
        pool.close()


def test_close_during_a_background_reset_closes_the_environment_and_wakes_waiters():
    opener = Opener()
    pool = EnvPool(opener=opener)
    env = pool.acquire(TASK, reset=False)
    env.use()
    pool.release(TASK, env)
    assert env.reset_started.wait(30)
    errors: list = []

    def acquire() -> None:
        try:
            pool.acquire(TASK, reset=False)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=acquire, daemon=True)
    thread.start()
    pool.close()
    thread.join(30)
    assert env.closed and errors and "closed" in str(errors[0])
    env.gate.set()
    with pytest.raises(RuntimeError, match="closed"):
        pool.acquire(TASK)


def test_environments_being_reset_count_against_max_idle():
    opener = Opener()
    pool = EnvPool(opener=opener, max_idle_per_task=1)
    try:
        first, second = pool.acquire(TASK, reset=False), pool.acquire(TASK, reset=False)
        pool.release(TASK, first)
        pool.release(TASK, second)
        assert second.closed and not first.closed, "one kept (being reset), the other closed"
    finally:
        first.gate.set()
        pool.close()


def test_without_background_reset_the_environment_is_reset_on_acquire():
    opener = Opener()
    pool = EnvPool(opener=opener, reset_in_background=False)
    try:
        env = pool.acquire(TASK)
        env.use()
        pool.release(TASK, env)
        assert not env.reset_started.is_set(), "nothing runs on release"
        env.gate.set()
        again = pool.acquire(TASK)
        assert again is env and env.resets == 1 and not env.dirty
    finally:
        pool.close()
