"""Rewards for RL: the evaluator grades the final diff in a fresh environment, and a
reward function turns (task, trajectory, grade) into a number.

The agent's container is never asked whether the tests pass: its only product is
`trajectory.final_patch`, which `grade_patch` hands to the evaluator
(swerve.harness.evaluate.evaluate_instance) exactly like a benchmark prediction —
test files the patch touched are restored and flagged, results come from JUnit XML
outside the repository, canaries catch forged results. A flag that is evidence of
forgery or a change to the grading machinery (swerve.harness.flags: evidence and
restored flags) makes the reward 0 whatever the reward function says; information
flags (string matches such as `suspicious_code:*`) never do, so honest fixes to
pytest itself are paid. The result carries the zeroing flags, and the grade all of
them, so trainers can log them.

Reward functions are plain callables `(task, trajectory, grade) -> float`:
`binary_reward`, `partial_credit_reward`, and `shaped(...)` which adds optional
shaping terms (edit distance to the gold patch, revert rate, format errors,
length) to a base reward.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swerve.errors import InfraError
from swerve.harness.timeouts import TEST_RUN_TIMEOUT_S
from swerve.schema import Grade, Prediction, Task, Trajectory

RewardFn = Callable[[Task, Trajectory, Grade], float]
GRADE_ATTEMPTS = 3


@dataclass
class RewardResult:
    """A reward with its parts: the value, the named terms, tamper flags, the grade."""

    value: float
    terms: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    grade: Grade | None = None

    @property
    def tampered(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "terms": dict(self.terms), "flags": list(self.flags), "tampered": self.tampered,
                "resolved": bool(self.grade and self.grade.resolved),
                "failure_class": self.grade.failure_class.value if self.grade else None}


def grade_patch(task: Task, patch: str, *, backend: str = "auto", timeout_s: float = TEST_RUN_TIMEOUT_S,
                run_id: str = "rl") -> Grade:
    """Grade `patch` for `task` in a fresh environment with the evaluator.

    Infrastructure failures are retried GRADE_ATTEMPTS times and then raised
    (InfraError): an infra failure is never a reward of 0 for the model.
    """
    from swerve.harness.evaluate import evaluate_instance

    prediction = Prediction(instance_id=task.instance_id, model_name_or_path="rl", model_patch=patch)
    last: Exception | None = None
    for attempt in range(GRADE_ATTEMPTS):
        with tempfile.TemporaryDirectory(prefix="swerve-rl-grade-") as scratch:
            instance_dir = Path(scratch)
            try:
                grade = evaluate_instance(task, prediction, run_id=run_id, timeout=timeout_s, backend=backend,
                                          instance_dir=instance_dir)
            except InfraError as exc:
                last = exc
                time.sleep(min(2.0 * (attempt + 1), 10.0))
                continue
            base_files = instance_dir / "base_files.json"
            if base_files.exists():
                import json

                grade.base_files = json.loads(base_files.read_text(encoding="utf-8"))
            return grade
    raise InfraError(f"grading {task.instance_id} failed {GRADE_ATTEMPTS} times: {last}")


def tamper_flags(grade: Grade) -> list[str]:
    """Flags that make a reward 0: evidence (forged results, a replaced runner, unsafe
    patches) and restored grading machinery (tests, runner shadows, interpreter
    hooks); information flags are left out (swerve.harness.flags)."""
    from swerve.harness.flags import reward_zeroing_flags

    flags = reward_zeroing_flags(grade.tamper_flags)
    if grade.tests_touched and "tests_touched" not in flags:
        flags.append("tests_touched")
    return flags


def binary_reward(task: Task, trajectory: Trajectory, grade: Grade) -> float:
    """1 when the patch resolves the task, else 0."""
    return 1.0 if grade.resolved else 0.0


def partial_credit_reward(task: Task, trajectory: Trajectory, grade: Grade) -> float:
    """The fraction of FAIL_TO_PASS tests passing, gated on PASS_TO_PASS: any broken
    PASS_TO_PASS test makes it 0 (fixing one thing by breaking another earns nothing)."""
    if grade.resolved:
        return 1.0
    if grade.tests_status.get("PASS_TO_PASS", {}).get("failure"):
        return 0.0
    return grade.fail_to_pass_fraction


def edit_distance_term(task: Task, trajectory: Trajectory, grade: Grade) -> float:
    """Line edit distance to the gold patch's result, normalised by the gold's changed
    lines and capped at 1 (0 = the gold edit exactly). Needs the grade's base files."""
    from swerve.reports.metrics import edit_distance

    base_files = (grade.model_extra or {}).get("base_files")
    if base_files is None or not task.patch.strip():
        return 0.0
    try:
        distance = edit_distance(base_files, trajectory.final_patch, task.patch)
    except Exception:
        return 1.0
    return min(1.0, distance.normalised if distance.normalised is not None else 1.0)


def revert_rate_term(task: Task, trajectory: Trajectory, grade: Grade) -> float:
    """The fraction of changed lines the agent later undid (swerve.reports.metrics)."""
    from swerve.reports.metrics import revert_stats

    return revert_stats(step.diff for step in trajectory.steps).rate or 0.0


def format_error_term(task: Task, trajectory: Trajectory, grade: Grade) -> float:
    """The fraction of turns that could not be parsed into an action."""
    steps = trajectory.steps
    return sum(1 for step in steps if step.format_error) / len(steps) if steps else 0.0


def length_term(task: Task, trajectory: Trajectory, grade: Grade) -> float:
    """Turns used over the episode's step limit (1 = used every turn)."""
    limit = ((trajectory.manifest or {}).get("limits") or {}).get("max_steps") or max(len(trajectory.steps), 1)
    return min(1.0, len(trajectory.steps) / limit)


SHAPING_TERMS: dict[str, RewardFn] = {
    "edit_distance": edit_distance_term,
    "revert_rate": revert_rate_term,
    "format_errors": format_error_term,
    "length": length_term,
}


class shaped:
    """`base` minus weighted penalty terms, e.g. `shaped(partial_credit_reward, format_errors=0.1, length=0.05)`.

    Terms: edit_distance, revert_rate, format_errors, length (each in [0, 1]).
    The result is clipped to [0, 1]; tampering still zeroes it.
    """

    def __init__(self, base: RewardFn = binary_reward, **weights: float) -> None:
        unknown = set(weights) - set(SHAPING_TERMS)
        if unknown:
            raise ValueError(f"unknown shaping term(s) {sorted(unknown)}; use {sorted(SHAPING_TERMS)}")
        self.base = base
        self.weights = dict(weights)
        self.__name__ = f"shaped_{getattr(base, '__name__', 'reward')}"

    def evaluate(self, task: Task, trajectory: Trajectory, grade: Grade) -> tuple[float, dict[str, float]]:
        """The shaped reward and its terms, each term computed once."""
        terms = {name: SHAPING_TERMS[name](task, trajectory, grade) for name in self.weights}
        value = self.base(task, trajectory, grade) - sum(self.weights[name] * terms[name] for name in terms)
        return max(0.0, min(1.0, value)), terms

    def __call__(self, task: Task, trajectory: Trajectory, grade: Grade) -> float:
        return self.evaluate(task, trajectory, grade)[0]


def compute_reward(task: Task, trajectory: Trajectory, grade: Grade, reward: RewardFn | None = None) -> RewardResult:
    """Apply `reward` (default binary) to a grade; any tamper flag forces 0."""
    reward = reward or binary_reward
    flags = tamper_flags(grade)
    if isinstance(reward, shaped):
        value, terms = reward.evaluate(task, trajectory, grade)
    else:
        value, terms = reward(task, trajectory, grade), {}
    value = float(value)
    terms["reward"] = value
    if flags:
        value = 0.0
    return RewardResult(value=value, terms=terms, flags=flags, grade=grade)


def score_trajectory(task: Task, trajectory: Trajectory, *, reward: RewardFn | None = None, backend: str = "auto",
                     timeout_s: float = TEST_RUN_TIMEOUT_S, run_id: str = "rl") -> RewardResult:
    """Grade the trajectory's final patch in a fresh environment, then apply `reward`."""
    grade = grade_patch(task, trajectory.final_patch, backend=backend, timeout_s=timeout_s, run_id=run_id)
    return compute_reward(task, trajectory, grade, reward)
