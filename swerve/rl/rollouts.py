"""A rollout manager that decouples agents from the trainer (SeamlessFlow-style).

Episode workers take (task, group, sample) items, run an episode in a warm
environment from the pool (`EnvPool`: reset, not recreate), grade it, and put the
finished rollout into a buffer; the trainer takes whole groups out of the buffer
(`group_size` rollouts of the same task, what GRPO needs) while the workers go on.

- Back-pressure: at most `max_groups_ahead` groups are in flight or waiting in the
  buffer; the scheduler stops handing out work until the trainer takes a group.
- Staleness: every turn records the policy version that produced it; a group whose
  oldest turn is more than `max_staleness` versions behind is dropped when taken
  (`stats["dropped_stale"]`) and its task is scheduled again.
- Weight updates: `update_policy(fn)` pauses workers between turns, runs `fn`
  (swap the weights), bumps the version and resumes. Episodes in progress carry on
  with the new weights (partial rollouts survive; their turns keep their versions).
- Failure isolation: `kill_worker(i)` (or any crash inside an episode) loses that
  episode only: its environment is discarded (the container removed), the sample is
  scheduled again, and a replacement worker starts. Infrastructure errors are
  retried; they never become a reward.

Workers are threads in this process (the policy is shared; the environments do the
heavy lifting in containers). Scale-out over Ray: see docs/rl.md.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from swerve.agents.loop import EpisodeLimits
from swerve.environments.base import Limits
from swerve.harness.timeouts import TEST_RUN_TIMEOUT_S
from swerve.rl.gym_env import SweEnv, episode_configuration
from swerve.environments.warm_pool import EnvPool
from swerve.schema import Task, Trajectory

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """One finished episode, ready for a trainer."""

    rollout_id: str
    instance_id: str
    group_id: int
    sample_index: int
    trajectory: Trajectory
    reward: float
    policy_versions: list[int] = field(default_factory=list)
    tokens: Any = None

    @property
    def policy_version(self) -> int:
        return min(self.policy_versions) if self.policy_versions else 0


@dataclass
class _Work:
    task: Task
    group_id: int
    sample_index: int
    attempts: int = 0


class WorkerKilled(Exception):
    """The manager killed this worker's episode on purpose."""


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.kill = threading.Event()
        self.env: Any = None
        self.thread: threading.Thread | None = None
        self.current: _Work | None = None


class RolloutManager:
    """Produce graded rollouts of `policy_factory(task)` on `tasks`, group by group.

    `policy_factory(task)` returns a Policy for one episode (it may return one shared
    policy). `tasks` are cycled in order (or pass `task_order` any iterable of tasks).
    Use as a context manager, or call `start()` / `close()`. `agent` is the episode
    configuration (prompts, tools, parser, limits) every SweEnv gets, as `swerve run
    --config` uses it (an AgentConfig, a YAML path, or None for the default).
    `run_id` labels the manager's containers (`swerve env prune --run-id`); by default
    each manager gets its own (`rl-` and 8 hex digits). Two live managers of one process
    must not share one: close() may remove this process's containers of its run id.
    """

    close_wait_s = 30.0
    """How long close() waits for each worker before it removes the run's containers that
    this process still owns (a worker grading an episode holds one no pool knows)."""

    def __init__(
        self,
        tasks: Iterable[Task],
        policy_factory: Callable[[Task], Any],
        *,
        workers: int = 2,
        group_size: int = 1,
        max_groups_ahead: int = 2,
        max_staleness: int = 1,
        backend: str = "auto",
        env_limits: Limits | None = None,
        limits: EpisodeLimits | None = None,
        agent: Any = None,
        reward: Any = None,
        grade: bool = True,
        grade_timeout_s: float = TEST_RUN_TIMEOUT_S,
        tokenizer: Any = None,
        run_id: str | None = None,
        warm: bool = True,
        max_attempts: int = 3,
        opener: Callable[..., Any] | None = None,
        task_order: Iterable[Task] | None = None,
    ) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("RolloutManager needs at least one task")
        self.policy_factory = policy_factory
        self.workers = workers
        self.group_size = group_size
        self.max_staleness = max_staleness
        self.env_limits, self.agent, self.limits = episode_configuration(env_limits, agent, limits)
        self.reward = reward
        self.grade = grade
        self.grade_timeout_s = grade_timeout_s
        self.backend = backend
        self.tokenizer = tokenizer
        self.run_id = run_id or f"rl-{secrets.token_hex(4)}"
        self.warm = warm
        self.max_attempts = max_attempts
        self.pool = EnvPool(backend=backend, limits=self.env_limits, run_id=self.run_id,
                            max_idle_per_task=max(1, workers), opener=opener)
        self.policy_version = 0
        self.stats = {"episodes": 0, "groups": 0, "dropped_stale": 0, "killed": 0, "crashed": 0, "infra_retries": 0,
                      "failed_samples": 0}
        self._order = iter(task_order) if task_order is not None else itertools.cycle(self.tasks)
        self._work: queue.Queue[_Work] = queue.Queue()
        self._ready: queue.Queue[list[Rollout]] = queue.Queue()
        self._slots = threading.Semaphore(max(1, max_groups_ahead))
        self.slot_waits = 0  # times the scheduler found every group slot taken (back-pressure held it)
        self._groups: dict[int, list[Rollout]] = {}
        self._group_tasks: dict[int, Task] = {}
        self._group_ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._in_turn = 0
        self._idle = threading.Condition(self._lock)
        self._workers: list[_Worker] = []
        self._scheduler: threading.Thread | None = None

    def start(self) -> "RolloutManager":
        self._scheduler = threading.Thread(target=self._schedule, name="swerve-rl-scheduler", daemon=True)
        self._scheduler.start()
        for index in range(self.workers):
            self._spawn(index)
        return self

    def _spawn(self, index: int) -> None:
        worker = _Worker(index)
        worker.thread = threading.Thread(target=self._work_loop, args=(worker,), name=f"swerve-rl-worker-{index}",
                                         daemon=True)
        with self._lock:
            if index < len(self._workers):
                self._workers[index] = worker
            else:
                self._workers.append(worker)
        worker.thread.start()

    def _schedule(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.2):
                with self._lock:
                    self.slot_waits += 1
                continue
            try:
                task = next(self._order)
            except StopIteration:
                self._slots.release()
                return
            self._enqueue_group(task)

    def _enqueue_group(self, task: Task) -> None:
        group_id = next(self._group_ids)
        with self._lock:
            self._groups[group_id] = []
            self._group_tasks[group_id] = task
        for sample in range(self.group_size):
            self._work.put(_Work(task, group_id, sample))

    def _work_loop(self, worker: _Worker) -> None:
        while not self._stop.is_set():
            try:
                item = self._work.get(timeout=0.2)
            except queue.Empty:
                continue
            worker.current = item
            try:
                rollout = self._run_one(worker, item)
            except WorkerKilled:
                if self._stop.is_set():
                    return
                self._count("killed")
                self._retry(item, count=False)
                self._spawn(worker.index)
                return
            except Exception as exc:  # an episode crash must not take the manager down
                from swerve.errors import InfraError

                if self._stop.is_set():
                    return
                key = "infra_retries" if isinstance(exc, InfraError) else "crashed"
                self._count(key)
                log.warning("rollout on %s failed (%s: %s); scheduling it again", item.task.instance_id,
                            type(exc).__name__, exc)
                self._retry(item)
                continue
            finally:
                worker.current = None
            if rollout is not None:
                self._deliver(rollout)

    def _retry(self, item: _Work, count: bool = True) -> None:
        if self._stop.is_set():
            return
        item.attempts += 1 if count else 0
        if item.attempts >= self.max_attempts:
            self._count("failed_samples")
            log.error("giving up on a sample of %s after %d attempts", item.task.instance_id, item.attempts)
            with self._lock:
                abandoned = self._groups.pop(item.group_id, None) is not None
                self._group_tasks.pop(item.group_id, None)
            if abandoned:  # a group's second failed sample has no slot left to free
                self._slots.release()
            return
        self._work.put(item)

    def _acquire_env(self, task: Task) -> Any:
        if self.warm:
            return self.pool.acquire(task, reset=False)
        return self.pool.opener(task, self.backend, self.env_limits, self.run_id)

    def _release_env(self, task: Task, env: Any, ok: bool) -> None:
        if self.warm and ok:
            self.pool.release(task, env)
        elif self.warm:
            self.pool.discard(env)
        else:
            try:
                env.close()
            except Exception:
                pass

    def _run_one(self, worker: _Worker, item: _Work) -> Rollout | None:
        task = item.task
        env = self._acquire_env(task)
        worker.env = env
        ok = False
        try:
            if worker.kill.is_set():
                raise WorkerKilled()
            policy = self.policy_factory(task)
            sweenv = SweEnv(task, backend=self.backend, limits=self.limits, agent=self.agent, reward=self.reward,
                            grade=self.grade,
                            grade_timeout_s=self.grade_timeout_s, tokenizer=self.tokenizer, run_id=self.run_id,
                            environment=env, policy_info=_describe(policy))
            messages, tools, info = sweenv.reset(policy_version=self.policy_version)
            done = truncated = False
            reward = 0.0
            while not (done or truncated):
                version = self._enter_turn(worker)
                try:
                    began = time.monotonic()
                    completion = policy.act(messages, tools)
                    model_time = time.monotonic() - began
                finally:
                    self._leave_turn()
                if worker.kill.is_set():
                    raise WorkerKilled()
                _, reward, done, truncated, info = sweenv.step(completion, policy_version=version,
                                                               model_time_s=model_time)
                if worker.kill.is_set():
                    raise WorkerKilled()
                messages = info["messages"]
            ok = True
        except Exception:
            if worker.kill.is_set():
                raise WorkerKilled()
            raise
        finally:
            worker.env = None
            self._release_env(task, env, ok)
        trajectory: Trajectory = info["trajectory"]
        versions = [getattr(step, "policy_version", 0) or 0 for step in trajectory.steps]
        trajectory.manifest.update(group_id=item.group_id, sample_index=item.sample_index)
        return Rollout(rollout_id=sweenv.rollout_id, instance_id=task.instance_id, group_id=item.group_id,
                       sample_index=item.sample_index, trajectory=trajectory, reward=reward,
                       policy_versions=versions, tokens=sweenv.token_trajectory)

    def _enter_turn(self, worker: _Worker) -> int:
        """Wait while a weight update is in progress; return the version to act with."""
        while not self._running.wait(timeout=0.2):
            if worker.kill.is_set() or self._stop.is_set():
                raise WorkerKilled()
        with self._lock:
            self._in_turn += 1
            return self.policy_version

    def _leave_turn(self) -> None:
        with self._lock:
            self._in_turn -= 1
            self._idle.notify_all()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _deliver(self, rollout: Rollout) -> None:
        with self._lock:
            self.stats["episodes"] += 1
            group = self._groups.get(rollout.group_id)
            if group is None:
                return
            group.append(rollout)
            if len(group) < self.group_size:
                return
            del self._groups[rollout.group_id]
        group.sort(key=lambda r: r.sample_index)
        self._ready.put(group)

    def next_group(self, timeout: float | None = None) -> list[Rollout]:
        """The next complete group (blocks); stale groups are dropped and redone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                group = self._ready.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"no rollout group ready within {timeout}s") from None
            with self._lock:
                task = self._group_tasks.pop(group[0].group_id)
            oldest = min(r.policy_version for r in group)
            if self.policy_version - oldest > self.max_staleness:
                self._count("dropped_stale")
                self._enqueue_group(task)
                continue
            self._slots.release()
            self._count("groups")
            return group

    def batch(self, groups: int, timeout: float | None = None) -> list[Rollout]:
        """`groups` complete groups, flattened (group members stay adjacent)."""
        out: list[Rollout] = []
        for _ in range(groups):
            out.extend(self.next_group(timeout))
        return out

    def pause(self, timeout: float | None = None) -> None:
        """Stop workers at their next turn boundary and wait until no turn is running."""
        self._running.clear()
        with self._lock:
            self._idle.wait_for(lambda: self._in_turn == 0, timeout=timeout)

    def resume(self) -> None:
        self._running.set()

    def update_policy(self, swap: Callable[[], Any] | None = None) -> int:
        """Pause, run `swap()` (load new weights), bump the policy version, resume."""
        self.pause()
        try:
            if swap is not None:
                swap()
            with self._lock:
                self.policy_version += 1
        finally:
            self.resume()
        return self.policy_version

    def kill_worker(self, index: int) -> None:
        """Abort worker `index`'s episode now: its environment is closed, the episode
        is lost and scheduled again, and a fresh worker takes the slot. Returns at
        once; `stats["killed"]` counts the kill when the worker has noticed it (at
        its next turn, or when a command in its closed environment fails)."""
        with self._lock:
            worker = self._workers[index]
        worker.kill.set()
        env = worker.env
        if env is not None:
            self.pool.discard(env)

    @property
    def free_group_slots(self) -> int:
        """Groups the scheduler may still start before the trainer takes one (max_groups_ahead at most)."""
        return self._slots._value

    @property
    def groups_ahead(self) -> int:
        """Groups scheduled (queued, running or ready) that next_group has not handed out yet."""
        with self._lock:
            return len(self._group_tasks)

    @property
    def busy_workers(self) -> list[int]:
        with self._lock:
            return [w.index for w in self._workers if w.current is not None]

    def close(self) -> None:
        """Stop scheduling, stop workers, close every environment (none leaks)."""
        self._stop.set()
        self._running.set()
        for worker in list(self._workers):
            worker.kill.set()
        for worker in list(self._workers):
            if worker.env is not None:
                self.pool.discard(worker.env)
        others = [w.thread for w in self._workers if w.thread is not None and w.thread is not threading.current_thread()]
        for thread in others:
            thread.join(timeout=self.close_wait_s)
        if any(thread.is_alive() for thread in others):
            # A worker still grading holds a fresh grading container that is in no pool;
            # remove this process's containers of the run so that none outlives close().
            from swerve.harness.abandon import remove_own_containers

            removed = remove_own_containers(self.run_id)
            log.warning("workers still busy %.0f s after close(); removed %d container(s) of %s", self.close_wait_s,
                        len(removed), self.run_id)
            for thread in others:
                thread.join(timeout=10)
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
        self.pool.close()

    def __enter__(self) -> "RolloutManager":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(policy: Any) -> dict[str, Any]:
    try:
        return dict(policy.describe() or {})
    except Exception:
        return {"policy": getattr(policy, "name", type(policy).__name__)}
