"""Resolving a task from what a trainer's dataset row carries.

Trainers pass per-sample dataset fields to the environment (SkyRL `extras`, rLLM
`from_dict(info)`, verl `run(**kwargs)`). A row names its task either inline
(`task`: a SWE-bench row as a dict or JSON string) or by `instance_id` plus a
`tasks_path` (any file swerve.harness.tasks can load).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from swerve.schema import Task


@lru_cache(maxsize=16)
def _tasks_in(path: str) -> dict[str, Task]:
    from swerve.harness.tasks import load_tasks

    return {task.instance_id: task for task in load_tasks(path)}


def task_from_fields(fields: dict[str, Any], tasks_path: str | None = None) -> Task:
    """The Task a dataset row names (inline `task`, or `instance_id` in `tasks_path`)."""
    inline = fields.get("task")
    if isinstance(inline, Task):
        return inline
    if isinstance(inline, str) and inline.strip():
        inline = json.loads(inline)
    if isinstance(inline, dict):
        return Task.model_validate(inline)
    instance_id = fields.get("instance_id")
    path = fields.get("tasks_path") or tasks_path
    if not instance_id or not path:
        raise ValueError("a swerve dataset row needs `task` (a SWE-bench row) or `instance_id` with `tasks_path`; "
                         f"got fields {sorted(fields)}")
    tasks = _tasks_in(str(path))
    if instance_id not in tasks:
        raise ValueError(f"instance_id {instance_id!r} is not in {path}; check the dataset against the task file")
    return tasks[instance_id]
