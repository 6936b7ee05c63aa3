"""Rollout throughput of swerve's RL manager on the real toolz tasks (Docker).

Measures, in one run:
- graded episodes per minute with the oracle policy (reads code, edits, runs the
  task's tests, submits; each reward graded in a fresh container) with 1 and 2 workers;
- short episodes (one shell command, then submit; ungraded) with a warm pool of
  environments (reset between episodes, in the background) against a fresh container
  per episode; `warm_episode_ms` / `fresh_episode_ms` are the median time between two
  finished episodes as the trainer sees them (1 worker);
- for the graded runs, how many of the machine's cores were busy and the machine's
  CPU-seconds per episode (/proc/stat; whatever else runs on the machine counts too), which
  bound `speedup_2w`: with every core busy it is at most
  (cpus / cores_busy_1w) x (cpu_s_per_episode_1w / cpu_s_per_episode_2w)
  (`speedup_2w_cpu_bound`).
The graded 1- and 2-worker phases alternate over `--rounds` rounds (the first phase
rotating), so the machine's drifting speed falls on both; `speedup_2w` and the graded
figures are medians over rounds (`speedup_2w_spread`, `speedup_2w_rounds`: the spread
and the per-round values).
`--profile` adds where a warm short episode's time goes (perf_counter spans around the
environment's and the manager's steps, summed over all threads).
The last line is a JSON object (see BENCHMARKS.md).

    python bench/rollouts.py [--episodes 6] [--rounds 3] [--short 12] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from interleave import run_interleaved, summarize
from machine import machine_cpu_seconds

from swerve.agents.loop import EpisodeLimits
from swerve.agents.policies.oracle import OraclePolicy
from swerve.fileio import iter_jsonl
from swerve.rl.rollouts import RolloutManager
from swerve.schema import Completion, Task, ToolCall

TASKS_FILE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "toolz_tasks.jsonl"


class OneCommand:
    """A short episode: one `git status`, then submit."""

    name = "one-command"

    def describe(self) -> dict:
        return {"policy": self.name}

    def act(self, messages, tools) -> Completion:
        if any(m.get("role") == "assistant" for m in messages):
            return Completion(tool_calls=[ToolCall(name="submit", arguments={}, id="s")])
        return Completion(tool_calls=[ToolCall(name="bash", arguments={"command": "git status --short"}, id="c")])


def episodes_per_minute(tasks: list[Task], policy_factory, *, episodes: int, workers: int, grade: bool,
                        warm: bool, run_id: str, on_clock_start=None) -> tuple[float, dict]:
    """Run `episodes` rollouts (groups of 1) and return episodes per minute and stats.

    The manager is started, every task's image built and one episode per task (or per
    worker, if more) run before the clock starts, so a warm pool holds an environment
    for every task and the figure is steady-state throughput."""
    manager = RolloutManager(tasks, policy_factory, workers=workers, group_size=1, max_groups_ahead=workers + 1,
                             backend="docker", grade=grade, warm=warm, run_id=run_id,
                             limits=EpisodeLimits(max_steps=30))
    try:
        manager.start()
        for _ in range(max(workers, len(tasks))):
            manager.next_group(timeout=1200)
        if on_clock_start is not None:
            on_clock_start()
        cpu_before = machine_cpu_seconds()
        started = time.perf_counter()
        finished = [started]
        rewards = []
        for _ in range(episodes):
            rewards.extend(r.reward for r in manager.next_group(timeout=1200))
            finished.append(time.perf_counter())
        elapsed = finished[-1] - started
        busy_s = machine_cpu_seconds() - cpu_before
    finally:
        manager.close()
    gaps = [(b - a) * 1000.0 for a, b in zip(finished, finished[1:])]
    stats = dict(manager.stats, opened=manager.pool.opened, reused=manager.pool.reused,
                 mean_reward=sum(rewards) / len(rewards), seconds=round(elapsed, 2),
                 episode_ms_median=round(statistics.median(gaps), 1),
                 episode_ms_range=[round(min(gaps), 1), round(max(gaps), 1)],
                 cores_busy=round(busy_s / elapsed, 2), cpu_s_per_episode=round(busy_s / episodes, 2))
    return episodes * 60.0 / elapsed, stats


SPANS = {
    "episode (worker)": ("swerve.rl.rollouts", "RolloutManager", "_run_one"),
    "SweEnv.reset": ("swerve.rl.gym_env", "SweEnv", "reset"),
    "SweEnv.step": ("swerve.rl.gym_env", "SweEnv", "step"),
    "  exec (the agent's command)": ("swerve.environments.docker", "DockerEnvironment", "exec"),
    "  diff": ("swerve.environments.repo_ops", "RepoOps", "diff"),
    "  shell round trips (all of them, resets' too)": ("swerve.environments.shell", "ShellSession", "run"),
    "reset (background thread)": ("swerve.environments.warm_pool", "EnvPool", "_reset_then_idle"),
    "  kill the agent's processes": ("swerve.environments.docker", "DockerEnvironment", "_stop_everything"),
    "  new shell + restore script": ("swerve.environments.shell", "ShellSession", "fresh"),
    "  stamp": ("swerve.environments.docker", "DockerEnvironment", "_touch_stamp"),
    "release to the pool": ("swerve.rl.rollouts", "RolloutManager", "_release_env"),
    "hand-off to the trainer": ("swerve.rl.rollouts", "RolloutManager", "_deliver"),
}


@contextmanager
def spans():
    """Wrap the methods in SPANS with perf_counter timers; yields {label: [ms, ...]}."""
    import importlib

    times: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    saved = []
    for label, (module, owner, name) in SPANS.items():
        cls = getattr(importlib.import_module(module), owner)
        original = cls.__dict__.get(name)
        if original is None:
            continue

        def timed(*args, __f=original, __label=label, **kwargs):
            began = time.perf_counter()
            try:
                return __f(*args, **kwargs)
            finally:
                with lock:
                    times[__label].append((time.perf_counter() - began) * 1000.0)

        setattr(cls, name, timed)
        saved.append((cls, name, original))
    try:
        yield times
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)


def median_of(rounds: list[dict], key: str) -> float:
    """The median of one figure over the rounds' stats, to 2 decimals."""
    return round(statistics.median(r[key] for r in rounds), 2)


def print_profile(times: dict[str, list[float]], episodes: int) -> None:
    print(f"where a warm short episode's time goes (ms per episode, over the {episodes} timed episodes):")
    for label in SPANS:
        values = times.get(label, [])
        if values:
            print(f"  {label:46s} {sum(values) / episodes:8.2f}  (calls {len(values)}, median {statistics.median(values):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=6, help="graded oracle episodes per worker setting")
    parser.add_argument("--short", type=int, default=12, help="short episodes for warm pool vs fresh containers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (1 worker, 2 workers) graded phases")
    parser.add_argument("--profile", action="store_true", help="also time the parts of warm short episodes")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    tasks = [Task.model_validate(row) for _, row in iter_jsonl(TASKS_FILE)]
    tag = f"bench-rollouts-{os.getpid()}"

    def oracle(task):
        return OraclePolicy(task)

    graded: dict[int, list[dict]] = {1: [], 2: []}

    def graded_side(workers: int):
        def side(_unit) -> float:
            rate, stats = episodes_per_minute(tasks, oracle, episodes=args.episodes, workers=workers, grade=True,
                                              warm=True, run_id=tag)
            graded[workers].append(dict(stats, per_min=rate))
            print(f"oracle, graded, {workers} worker(s), round {len(graded[workers])}: "
                  f"{rate:6.2f} episodes/min  {stats}")
            return stats["seconds"]
        return side

    # the 1- and 2-worker phases alternate over rounds (the first one rotating), so the
    # machine's drifting speed falls on both
    run_interleaved([None], {"1w": graded_side(1), "2w": graded_side(2)}, args.rounds)
    one_rounds, two_rounds = graded[1], graded[2]
    speedup_rounds = [two["per_min"] / one["per_min"] for one, two in zip(one_rounds, two_rounds)]
    speedup = summarize(speedup_rounds)
    bound = summarize([(os.cpu_count() or 1) / one["cores_busy"] * one["cpu_s_per_episode"] / two["cpu_s_per_episode"]
                       for one, two in zip(one_rounds, two_rounds)])
    warm, warm_stats = episodes_per_minute(tasks, lambda task: OneCommand(), episodes=args.short, workers=1,
                                           grade=False, warm=True, run_id=tag)
    print(f"short, warm pool (reset) : {warm:6.2f} episodes/min  {warm_stats}")
    fresh, fresh_stats = episodes_per_minute(tasks, lambda task: OneCommand(), episodes=args.short, workers=1,
                                             grade=False, warm=False, run_id=tag)
    print(f"short, fresh containers  : {fresh:6.2f} episodes/min  {fresh_stats}")
    if args.profile:
        with spans() as times:
            episodes_per_minute(tasks, lambda task: OneCommand(), episodes=args.short, workers=1, grade=False,
                                warm=True, run_id=tag, on_clock_start=times.clear)
        print_profile(times, args.short)
    print(json.dumps({
        "episodes_per_min_1w": median_of(one_rounds, "per_min"),
        "episodes_per_min_2w": median_of(two_rounds, "per_min"),
        "warm_vs_fresh": round(warm / fresh, 2),
        "short_episodes_per_min_warm": round(warm, 2),
        "short_episodes_per_min_fresh": round(fresh, 2),
        "warm_episode_ms": warm_stats["episode_ms_median"],
        "fresh_episode_ms": fresh_stats["episode_ms_median"],
        "speedup_2w": round(speedup["median"], 2),
        "speedup_2w_spread": {k: speedup[k] for k in ("min", "max", "iqr")},
        "speedup_2w_rounds": [round(r, 3) for r in speedup_rounds],
        "speedup_2w_cpu_bound": round(bound["median"], 2),
        "cores_busy_1w": median_of(one_rounds, "cores_busy"),
        "cores_busy_2w": median_of(two_rounds, "cores_busy"),
        "cpu_s_per_episode_1w": median_of(one_rounds, "cpu_s_per_episode"),
        "cpu_s_per_episode_2w": median_of(two_rounds, "cpu_s_per_episode"),
        "oracle_mean_reward": min(r["mean_reward"] for r in one_rounds + two_rounds),
        "episodes": args.episodes,
        "rounds": args.rounds,
        "short_episodes": args.short,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
