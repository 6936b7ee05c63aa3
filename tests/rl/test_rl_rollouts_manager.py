"""The rollout manager's mechanics, on in-memory environments (no containers)."""

from __future__ import annotations

import threading
import time

from rl_fixtures import ScratchEnvironment, ScriptedPolicy

from swerve.rl.rollouts import RolloutManager
from swerve.schema import Task

TASKS = [Task(instance_id=f"scratch-{n}", repo="o/r", problem_statement="fix") for n in range(3)]


class Opener:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.opened: list[ScratchEnvironment] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, task, backend, limits, run_id):
        env = ScratchEnvironment(task, delay_s=self.delay_s)
        with self.lock:
            self.opened.append(env)
        return env


def _wait_for(condition, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def _commands_run_by(manager: RolloutManager, index: int) -> int:
    """Commands worker `index`'s current episode has run so far (0 between episodes)."""
    env = manager._workers[index].env
    return env.commands_run if env is not None else 0


def _manager(opener, **kwargs) -> RolloutManager:
    kwargs.setdefault("policy_factory", lambda task: ScriptedPolicy(commands=2))
    return RolloutManager(TASKS, grade=False, opener=opener, **kwargs)


def test_groups_hold_n_rollouts_of_one_task_and_environments_are_reused():
    opener = Opener()
    with _manager(opener, workers=2, group_size=3) as manager:
        groups = [manager.next_group(timeout=30) for _ in range(4)]
    for group in groups:
        assert len(group) == 3
        assert len({r.instance_id for r in group}) == 1
        assert [r.sample_index for r in group] == [0, 1, 2]
        assert all(r.trajectory.exit_status == "submitted" for r in group)
    # Groups come in completion order, which load on the machine may change: compare as a multiset.
    assert sorted(g[0].instance_id for g in groups) == ["scratch-0", "scratch-0", "scratch-1", "scratch-2"]
    assert len(opener.opened) <= 2 * len(TASKS), "environments are reset and reused, not recreated"
    assert sum(env.resets for env in opener.opened) >= 12
    assert all(env.closed for env in opener.opened), "close() closes every environment"


def test_back_pressure_bounds_work_ahead_of_the_trainer():
    opener = Opener()
    manager = _manager(opener, workers=2, group_size=2, max_groups_ahead=2).start()
    try:
        for episodes in (4, 6):
            _wait_for(lambda: manager.stats["episodes"] >= episodes)
            # Wait until the scheduler has tried for another group after those episodes and
            # been held back (every slot taken), instead of sleeping and hoping it would have.
            waits = manager.slot_waits
            _wait_for(lambda: manager.slot_waits > waits)
            assert manager.stats["episodes"] == episodes, "two groups ahead, then the workers wait"
            assert manager.groups_ahead == 2 and manager.busy_workers == []
            if episodes == 4:
                manager.next_group(timeout=10)
    finally:
        manager.close()


def test_policy_update_pauses_between_turns_and_episodes_survive_it():
    opener = Opener(delay_s=0.2)
    manager = _manager(opener, workers=2, group_size=1, max_groups_ahead=4, max_staleness=5,
                       policy_factory=lambda task: ScriptedPolicy(commands=6)).start()
    try:
        _wait_for(lambda: any(env.commands_run for env in opener.opened))  # an episode is under way
        swapped = []
        version = manager.update_policy(lambda: swapped.append(manager._in_turn))
        assert version == 1 and swapped == [0], "no turn runs while the weights are swapped"
        groups = [manager.next_group(timeout=30) for _ in range(4)]
    finally:
        manager.close()
    mixed = [r for g in groups for r in g if len(set(r.policy_versions)) > 1]
    assert mixed, "an episode in progress continued with the new policy version"
    assert all(r.policy_versions == sorted(r.policy_versions) for g in groups for r in g)


def test_stale_groups_are_dropped_and_redone():
    opener = Opener()
    manager = _manager(opener, workers=1, group_size=1, max_groups_ahead=2, max_staleness=0).start()
    try:
        _wait_for(lambda: manager.stats["episodes"] >= 2)
        manager.update_policy()
        group = manager.next_group(timeout=30)
    finally:
        manager.close()
    assert manager.stats["dropped_stale"] >= 1
    assert group[0].policy_version == 1


def test_killed_worker_loses_only_its_episode():
    opener = Opener(delay_s=0.2)
    manager = _manager(opener, workers=2, group_size=1, max_groups_ahead=3,
                       policy_factory=lambda task: ScriptedPolicy(commands=4)).start()
    try:
        _wait_for(lambda: _commands_run_by(manager, 0) >= 1)  # worker 0 is inside its episode
        manager.kill_worker(0)
        groups = [manager.next_group(timeout=60) for _ in range(4)]
    finally:
        manager.close()
    assert manager.stats["killed"] == 1
    assert {g[0].instance_id for g in groups[:3]} == {t.instance_id for t in TASKS}, "the lost sample was redone"
    assert sum(1 for env in opener.opened if env.resets == 1 and env.closed) >= 1
    assert all(g[0].trajectory.exit_status == "submitted" for g in groups)
    assert all(env.closed for env in opener.opened)


def test_a_crashing_policy_does_not_stop_the_manager():
    calls = {"n": 0}

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("policy server hiccup")
        return ScriptedPolicy(commands=1)

    with _manager(Opener(), workers=1, policy_factory=flaky) as manager:
        groups = [manager.next_group(timeout=30) for _ in range(2)]
    assert manager.stats["crashed"] == 1
    assert {g[0].instance_id for g in groups} == {"scratch-0", "scratch-1"}, "the crashed sample was redone"


def test_close_removes_the_runs_containers_when_a_worker_stays_busy(monkeypatch):
    """A worker that ignores the kill (here: its policy blocks; in real runs: grading in a
    fresh container) is waited for close_wait_s, then this process's containers of the run
    are removed so that none outlives the manager."""
    import swerve.harness.abandon

    removed_runs: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def remove_own_containers(run_id):
        removed_runs.append(run_id)
        release.set()  # removing its container is what ends a stuck grading run
        return []

    monkeypatch.setattr(swerve.harness.abandon, "remove_own_containers", remove_own_containers)

    class Blocking(ScriptedPolicy):
        def act(self, messages, tools):
            entered.set()
            release.wait(60)
            return super().act(messages, tools)

    manager = _manager(Opener(), policy_factory=lambda task: Blocking(commands=1), workers=1, run_id="stuck-run")
    manager.close_wait_s = 0.2
    manager.start()
    try:
        assert entered.wait(30), "the worker started its episode"
        manager.close()
    finally:
        release.set()
    assert removed_runs == ["stuck-run"]



def test_each_manager_labels_its_containers_with_its_own_run_id():
    """close() may remove this process's containers of the manager's run id: two managers
    must not share one unless the caller names it."""
    first, second = _manager(lambda task: None), _manager(lambda task: None)
    assert first.run_id != second.run_id and first.run_id.startswith("rl-")
    assert first.pool.run_id == first.run_id
    assert _manager(lambda task: None, run_id="mine").run_id == "mine"
