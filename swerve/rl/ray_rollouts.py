"""Scale rollouts out over a Ray cluster (`pip install 'swerve[ray]'`).

One `RolloutManager` runs inside a Ray actor per node (each node has its own Docker
daemon, and its warm pool lives next to it); `RayRollouts` fans the trainer's requests
out to them and hands back whichever node finishes a group first. Everything that
crosses the wire is plain data (`Rollout` dataclasses with pydantic trajectories), and
`update_policy` reaches every node, so staleness and weight swaps work as on one machine.

`policy_factory` and `opener` must be importable (module-level) callables so Ray can
ship them to the actors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from swerve.harness.ray_eval import ray_node_id
from swerve.schema import Task


class _ManagerActor:
    """A RolloutManager living in a Ray actor."""

    def __init__(self, tasks: list[dict[str, Any]], policy_factory: Callable[[Task], Any], options: dict[str, Any]):
        from swerve.rl.rollouts import RolloutManager

        self.manager = RolloutManager([Task.model_validate(t) for t in tasks], policy_factory, **options).start()

    def next_group(self, timeout: float | None = None):
        return self.manager.next_group(timeout)

    def update_policy(self, swap: Callable[[], Any] | None = None) -> int:
        return self.manager.update_policy(swap)

    def stats(self) -> dict[str, Any]:
        return dict(self.manager.stats, policy_version=self.manager.policy_version, node=ray_node_id())

    def close(self) -> None:
        self.manager.close()


class RayRollouts:
    """Rollout managers on `nodes` Ray actors (one per node with `spread=True`).

    Tasks are dealt round-robin to the actors, so each node keeps warm containers for
    its own share. `next_group()` returns the first group any node has ready.
    """

    def __init__(self, tasks: Iterable[Task], policy_factory: Callable[[Task], Any], *, nodes: int = 1,
                 spread: bool = True, actor_cpus: float = 1.0, **options: Any) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayRollouts needs a running Ray: call ray.init() (or ray.init(address='auto'))")
        tasks = list(tasks)
        if len(tasks) < nodes:
            raise ValueError(f"{nodes} nodes need at least {nodes} tasks (got {len(tasks)})")
        actor = ray.remote(_ManagerActor).options(num_cpus=actor_cpus, max_concurrency=4,
                                                  scheduling_strategy="SPREAD" if spread else "DEFAULT")
        self.actors = [
            actor.remote([t.model_dump(mode="json") for t in tasks[index::nodes]], policy_factory, options)
            for index in range(nodes)
        ]
        self._pending: dict[Any, Any] = {}

    def next_group(self, timeout: float | None = None):
        """The first complete group from any node (each node always has one request in flight)."""
        import ray

        for actor in self.actors:
            if actor not in self._pending.values():
                self._pending[actor.next_group.remote(timeout)] = actor
        ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError(f"no rollout group ready within {timeout}s")
        self._pending.pop(ready[0])
        return ray.get(ready[0])

    def update_policy(self, swap: Callable[[], Any] | None = None) -> list[int]:
        """Pause, swap and bump the version on every node."""
        import ray

        return ray.get([actor.update_policy.remote(swap) for actor in self.actors])

    def stats(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([actor.stats.remote() for actor in self.actors])

    def close(self) -> None:
        import ray

        ray.get([actor.close.remote() for actor in self.actors])
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []

    def __enter__(self) -> "RayRollouts":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
