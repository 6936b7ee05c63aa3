"""Synthetic run directories in the agreed layout, for tests, benchmarks and trying
`swerve report` without containers.

Each task edits one small Python module; the gold patch changes one line. A
synthetic agent makes a few edits, sometimes takes one back, and ends with the
gold edit (resolved), a wrong edit, or nothing. Everything is seeded.
"""

from __future__ import annotations

import difflib
import json
import random
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from swerve.fileio import atomic_write_json, atomic_write_text
from swerve.schema import FailureClass, Grade, Step, TestStatus, ToolCall, Trajectory

REPOS = ("acme/widgets", "acme/gadgets", "example/parser")
DIFFICULTIES = ("easy", "medium", "hard")


def unified_diff(path: str, before: str | None, after: str | None) -> str:
    """A git-style unified diff of one file (None: the file is absent on that side)."""
    if before == after:
        return ""
    old_lines = (before or "").splitlines(keepends=True)
    new_lines = (after or "").splitlines(keepends=True)
    header = f"diff --git a/{path} b/{path}\n"
    if before is None:
        header += "new file mode 100644\n"
    elif after is None:
        header += "deleted file mode 100644\n"
    body = difflib.unified_diff(
        old_lines,
        new_lines,
        fromfile=f"a/{path}" if before is not None else "/dev/null",
        tofile=f"b/{path}" if after is not None else "/dev/null",
    )
    return header + "".join(body)


def _module_text(index: int, lines: int = 40) -> str:
    body = [f"def function_{index}_{n}(value):\n    return value + {n}\n\n" for n in range(lines // 3)]
    return f'"""Module {index}."""\n\n' + "".join(body)


def _replace_line(text: str, line_number: int, new_line: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line_number] = new_line
    return "".join(lines)


@dataclass(frozen=True)
class SyntheticTask:
    instance_id: str
    repo: str
    difficulty: str
    path: str
    base_text: str
    gold_text: str

    @property
    def gold_patch(self) -> str:
        return unified_diff(self.path, self.base_text, self.gold_text)

    def row(self) -> dict:
        return {
            "instance_id": self.instance_id,
            "repo": self.repo,
            "base_commit": "0" * 40,
            "patch": self.gold_patch,
            "problem_statement": f"function in {self.path} returns the wrong value",
            "FAIL_TO_PASS": [f"tests/test_{self.instance_id}.py::test_fix"],
            "PASS_TO_PASS": [f"tests/test_{self.instance_id}.py::test_keep_{k}" for k in range(3)],
            "difficulty": {"label": self.difficulty},
        }


def synthetic_tasks(count: int, seed: int = 0) -> list[SyntheticTask]:
    rng = random.Random(seed)
    tasks = []
    for index in range(count):
        repo = REPOS[index % len(REPOS)]
        path = f"src/module_{index}.py"
        base = _module_text(index)
        line = 3 + 3 * rng.randrange(10)
        gold = _replace_line(base, line, f"    return value * {index + 2}\n")
        tasks.append(
            SyntheticTask(
                instance_id=f"{repo.replace('/', '__')}-{index}",
                repo=repo,
                difficulty=DIFFICULTIES[rng.randrange(len(DIFFICULTIES))],
                path=path,
                base_text=base,
                gold_text=gold,
            )
        )
    return tasks


def write_tasks(path: str | Path, tasks: list[SyntheticTask]) -> Path:
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(task.row()) + "\n" for task in tasks))
    return path


def _grade(task: SyntheticTask, outcome: str, rng: random.Random) -> Grade:
    row = task.row()
    f2p, p2p = row["FAIL_TO_PASS"], row["PASS_TO_PASS"]
    if outcome == "infra":
        return Grade(instance_id=task.instance_id, failure_class=FailureClass.INFRA, failure_reason="daemon error")
    resolved = outcome == "resolved"
    broken = [] if resolved or rng.random() < 0.7 else p2p[:1]
    tests_status = {
        "FAIL_TO_PASS": {"success": f2p if resolved else [], "failure": [] if resolved else f2p},
        "PASS_TO_PASS": {"success": [t for t in p2p if t not in broken], "failure": broken},
        "FAIL_TO_FAIL": {"success": [], "failure": []},
        "PASS_TO_FAIL": {"success": [], "failure": []},
    }
    statuses = {t: TestStatus.PASSED for t in tests_status["FAIL_TO_PASS"]["success"] + tests_status["PASS_TO_PASS"]["success"]}
    statuses.update({t: TestStatus.FAILED for t in tests_status["FAIL_TO_PASS"]["failure"] + broken})
    failure = {
        "resolved": FailureClass.NONE,
        "wrong": FailureClass.TESTS_FAILED,
        "empty": FailureClass.EMPTY_PATCH,
    }[outcome]
    return Grade(
        instance_id=task.instance_id,
        resolved=resolved,
        patch_exists=outcome != "empty",
        patch_is_None=False,
        patch_successfully_applied=outcome != "empty",
        tests_status=tests_status,
        test_statuses=statuses,
        failure_class=failure,
        tests_touched=["tests/conftest.py"] if outcome == "wrong" and rng.random() < 0.2 else [],
        durations={"tests_s": round(rng.uniform(1, 5), 3)},
    )


def _trajectory(task: SyntheticTask, outcome: str, rng: random.Random, model: str) -> tuple[Trajectory, str]:
    """A short edit-run-submit episode whose step diffs end in the final patch."""
    text = task.base_text
    steps: list[Step] = []

    def add(action: ToolCall | None, observation: str, format_error: str | None = None) -> None:
        steps.append(
            Step(
                index=len(steps),
                assistant=f"Step {len(steps)}: let me look at {task.path}." if action else "oops <tool",
                action=action,
                format_error=format_error,
                observation=observation,
                exit_code=0 if action else None,
                model_time_s=round(rng.uniform(0.2, 2.0), 3),
                env_time_s=round(rng.uniform(0.05, 1.0), 3),
                diff=unified_diff(task.path, task.base_text, text),
                prompt_token_ids=list(range(200 + 50 * len(steps))),
                completion_token_ids=list(range(rng.randrange(20, 80))),
            )
        )

    add(ToolCall(name="bash", arguments={"command": f"cat {task.path}"}), text[:200])
    if rng.random() < 0.1:
        add(None, "could not parse a tool call", format_error="no tool call found")
    if rng.random() < 0.4:
        text = _replace_line(text, 5, "    return value - 1  # tried this first\n")
        add(ToolCall(name="edit", arguments={"path": task.path, "old": "+", "new": "-"}), "edited")
        text = _replace_line(text, 5, task.base_text.splitlines(keepends=True)[5])
        add(ToolCall(name="edit", arguments={"path": task.path, "old": "-", "new": "+"}), "reverted <my> edit & retried")
    if outcome == "resolved":
        text = task.gold_text
    elif outcome == "wrong":
        text = _replace_line(text, 3 + 3 * rng.randrange(10), "    return None\n")
    add(ToolCall(name="bash", arguments={"command": "python -m pytest -q"}), "1 failed, 3 passed" if outcome != "resolved" else "4 passed")
    add(ToolCall(name="submit", arguments={}), "submitted")
    final_patch = unified_diff(task.path, task.base_text, text)
    trajectory = Trajectory(
        instance_id=task.instance_id,
        manifest={"model": model, "harness_version": "synthetic", "seed": 0},
        steps=steps,
        final_patch=final_patch,
        exit_status="submitted",
    )
    return trajectory, final_patch


def write_synthetic_run(
    run_dir: str | Path,
    tasks: list[SyntheticTask],
    *,
    seed: int = 0,
    resolve_rate: float = 0.5,
    model: str = "synthetic-model",
    with_trajectories: bool = True,
) -> Path:
    """Write a complete run directory (run.json, predictions, trajectories, per-instance
    reports with base_files.json, summary.json) for `tasks`."""
    run_dir = Path(run_dir)
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        run_dir / "run.json",
        {
            "run_id": run_dir.name,
            "kind": "agent" if with_trajectories else "eval",
            "swerve_version": "synthetic",
            "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
            "settings": {"model": model, "seed": seed},
        },
    )
    resolved_ids, unresolved_ids, empty_ids, error_ids = [], [], [], []
    with ExitStack() as files:
        predictions = files.enter_context(open(run_dir / "predictions.jsonl", "w", encoding="utf-8"))
        trajectories = (
            files.enter_context(open(run_dir / "trajectories.jsonl", "w", encoding="utf-8")) if with_trajectories else None
        )
        for task in tasks:
            draw = rng.random()
            outcome = "resolved" if draw < resolve_rate else ("infra" if draw > 0.98 else ("empty" if draw > 0.9 else "wrong"))
            trajectory, patch = _trajectory(task, "wrong" if outcome == "infra" else outcome, rng, model)
            grade = _grade(task, outcome, rng)
            trajectory.grade = grade
            if trajectories is not None:
                trajectories.write(trajectory.model_dump_json() + "\n")
            predictions.write(json.dumps({"instance_id": task.instance_id, "model_name_or_path": model, "model_patch": patch}) + "\n")
            instance = run_dir / "instances" / task.instance_id
            instance.mkdir(parents=True, exist_ok=True)
            (instance / "report.json").write_text(json.dumps({task.instance_id: grade.model_dump(mode="json")}))
            (instance / "patch.diff").write_text(patch)
            (instance / "base_files.json").write_text(json.dumps({task.path: task.base_text}))
            {"resolved": resolved_ids, "wrong": unresolved_ids, "empty": empty_ids, "infra": error_ids}[outcome].append(
                task.instance_id
            )
    atomic_write_json(
        run_dir / "summary.json",
        {
            "total_instances": len(tasks),
            "submitted_instances": len(tasks),
            "completed_instances": len(tasks) - len(error_ids),
            "resolved_instances": len(resolved_ids),
            "unresolved_instances": len(unresolved_ids),
            "empty_patch_instances": len(empty_ids),
            "error_instances": len(error_ids),
            "resolved_ids": resolved_ids,
            "unresolved_ids": unresolved_ids,
            "empty_patch_ids": empty_ids,
            "error_ids": error_ids,
        },
    )
    return run_dir
