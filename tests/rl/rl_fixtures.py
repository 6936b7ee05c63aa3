"""Helpers shared by the RL tests: the real toolz tasks and a partial fix for one, a
hand-made teacher trajectory, branching token sequences, the scratch backend over a
tiny repository."""

from __future__ import annotations

import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from swerve.environments import scratch

from swerve.fileio import iter_jsonl
from swerve.schema import Grade, Task, Trajectory

TASKS_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "toolz_tasks.jsonl"

DISSOC_PARTIAL_FIX = """diff --git a/toolz/dicttoolz.py b/toolz/dicttoolz.py
--- a/toolz/dicttoolz.py
+++ b/toolz/dicttoolz.py
@@ -217,7 +217,8 @@ def dissoc(d, *keys, **kwargs):
     if len(keys) < len(d) * .6:
         d2.update(d)
         for key in keys:
-            del d2[key]
+            if key in d2 or len(keys) == 1:
+                del d2[key]
     else:
         remaining = set(d)
         remaining.difference_update(keys)
"""

TEST_TAMPER = """diff --git a/toolz/tests/test_dicttoolz.py b/toolz/tests/test_dicttoolz.py
--- a/toolz/tests/test_dicttoolz.py
+++ b/toolz/tests/test_dicttoolz.py
@@ -1,3 +1,4 @@
+import pytest; pytestmark = pytest.mark.skip
 from collections import defaultdict as _defaultdict
 from collections.abc import Mapping
 import os
"""


def toolz_tasks() -> dict[str, Task]:
    return {row["instance_id"]: Task.model_validate(row) for _, row in iter_jsonl(TASKS_FILE)}


TOOLS = [{
    "type": "function",
    "function": {
        "name": "bash", "description": "run a shell command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    },
}]
MESSAGES = [
    {"role": "system", "content": "SYSTEM-TEXT: you fix bugs in repositories."},
    {"role": "user", "content": "USER-TEXT: frequencies drops None values."},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "name": "bash", "content": "TOOL-TEXT: setup.py toolz"},
    {"role": "assistant", "content": "Fixed it; submitting."},
]


def teacher_trajectory(instance_id: str = "hand__made-1", resolved: bool = True) -> Trajectory:
    """A submitted two-turn conversation (MESSAGES, TOOLS) graded `resolved`."""
    return Trajectory(instance_id=instance_id, messages=MESSAGES, tools=TOOLS, exit_status="submitted",
                      grade=Grade(instance_id=instance_id, resolved=resolved))


def branching_sequences(rng, vocab: int, prompt_tokens: int, fan_out: int,
                        middle_tokens: tuple[int, int], tail_tokens: tuple[int, int]) -> list[list[int]]:
    """One random prompt, `fan_out` middles after it and `fan_out` tails after each middle
    (`fan_out` squared sequences); lengths are drawn from the inclusive (low, high) ranges."""

    def tokens(count: int) -> list[int]:
        return [rng.randrange(vocab) for _ in range(count)]

    prompt = tokens(prompt_tokens)
    sequences = []
    for _ in range(fan_out):
        middle = tokens(rng.randint(*middle_tokens))
        for _ in range(fan_out):
            sequences.append(prompt + middle + tokens(rng.randint(*tail_tokens)))
    return sequences


SCRATCH_FILES = {"README": "a tiny repository for rollout mechanics\n", "bug.py": "def add(a, b):\n    return a - b\n"}


@lru_cache(maxsize=1)
def scratch_repo() -> Path:
    """One small git repository per test process, cloned by every ScratchEnvironment."""
    root = Path(tempfile.mkdtemp(prefix="swerve-rl-repo-"))
    for name, text in SCRATCH_FILES.items():
        (root / name).write_text(text)
    for argv in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base"]):
        subprocess.run(["git", *argv], cwd=root, check=True, capture_output=True)
    return root


class ScratchEnvironment(scratch.ScratchEnvironment):
    """The scratch backend over `scratch_repo()`, counting resets; with `delay_s` every
    command sleeps first (a slow environment for scheduling tests)."""

    def __init__(self, task=None, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.resets = 0
        super().__init__(scratch_repo(), instance_id=getattr(task, "instance_id", "scratch"))

    @property
    def commands_run(self) -> int:
        return len(self.commands)

    def exec(self, cmd: str, timeout: float | None = None):
        return super().exec(f"sleep {self.delay_s}; {cmd}" if self.delay_s else cmd, timeout)

    def reset(self) -> None:
        super().reset()
        self.resets += 1


class ScriptedPolicy:
    """Runs `commands` bash commands, then submits."""

    name = "scripted"

    def __init__(self, commands: int = 2) -> None:
        self.commands = commands

    def describe(self) -> dict:
        return {"policy": "scripted", "commands": self.commands}

    def act(self, messages, tools):
        from swerve.schema import Completion, ToolCall

        done = sum(1 for m in messages if m.get("role") == "assistant")
        if done < self.commands:
            call = ToolCall(name="bash", arguments={"command": f"echo step {done}"}, id=f"c{done}")
        else:
            call = ToolCall(name="submit", arguments={}, id=f"c{done}")
        return Completion(text="", tool_calls=[call])
