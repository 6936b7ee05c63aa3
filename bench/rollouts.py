"""Rollout throughput of swerve's RL manager on the real toolz tasks (Docker).

Measures, in one run:
- graded episodes per minute with the oracle policy (reads code, edits, runs the
  task's tests, submits; each reward graded in a fresh container) with 1 and 2 workers;
- short episodes (one shell command, then submit; ungraded) with a warm pool of
  environments (reset between episodes) against a fresh container per episode.
The last line is a JSON object (see BENCHMARKS.md).

    python bench/rollouts.py [--episodes 6] [--short 12]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

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
                        warm: bool, run_id: str) -> tuple[float, dict]:
    """Run `episodes` rollouts (groups of 1) and return episodes per minute and stats.

    The manager is started and every task's image built before the clock starts, so
    the figure is steady-state throughput."""
    manager = RolloutManager(tasks, policy_factory, workers=workers, group_size=1, max_groups_ahead=workers + 1,
                             backend="docker", grade=grade, warm=warm, run_id=run_id,
                             limits=EpisodeLimits(max_steps=30))
    try:
        manager.start()
        for _ in range(min(workers, episodes)):
            manager.next_group(timeout=1200)
        started = time.perf_counter()
        rewards = [r.reward for _ in range(episodes) for r in manager.next_group(timeout=1200)]
        elapsed = time.perf_counter() - started
    finally:
        manager.close()
    stats = dict(manager.stats, opened=manager.pool.opened, reused=manager.pool.reused,
                 mean_reward=sum(rewards) / len(rewards), seconds=round(elapsed, 2))
    return episodes * 60.0 / elapsed, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=6, help="graded oracle episodes per worker setting")
    parser.add_argument("--short", type=int, default=12, help="short episodes for warm pool vs fresh containers")
    args = parser.parse_args()
    tasks = [Task.model_validate(row) for _, row in iter_jsonl(TASKS_FILE)]
    tag = f"bench-rollouts-{os.getpid()}"

    def oracle(task):
        return OraclePolicy(task)

    one_w, one_stats = episodes_per_minute(tasks, oracle, episodes=args.episodes, workers=1, grade=True, warm=True,
                                           run_id=tag)
    print(f"oracle, graded, 1 worker : {one_w:6.2f} episodes/min  {one_stats}")
    two_w, two_stats = episodes_per_minute(tasks, oracle, episodes=args.episodes, workers=2, grade=True, warm=True,
                                           run_id=tag)
    print(f"oracle, graded, 2 workers: {two_w:6.2f} episodes/min  {two_stats}")
    warm, warm_stats = episodes_per_minute(tasks, lambda task: OneCommand(), episodes=args.short, workers=1,
                                           grade=False, warm=True, run_id=tag)
    print(f"short, warm pool (reset) : {warm:6.2f} episodes/min  {warm_stats}")
    fresh, fresh_stats = episodes_per_minute(tasks, lambda task: OneCommand(), episodes=args.short, workers=1,
                                             grade=False, warm=False, run_id=tag)
    print(f"short, fresh containers  : {fresh:6.2f} episodes/min  {fresh_stats}")
    print(json.dumps({
        "episodes_per_min_1w": round(one_w, 2),
        "episodes_per_min_2w": round(two_w, 2),
        "warm_vs_fresh": round(warm / fresh, 2),
        "short_episodes_per_min_warm": round(warm, 2),
        "short_episodes_per_min_fresh": round(fresh, 2),
        "oracle_mean_reward": one_stats["mean_reward"],
        "episodes": args.episodes,
        "short_episodes": args.short,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
