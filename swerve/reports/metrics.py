"""Scores for one trajectory and for one run, as docs/reports.md defines them.

Everything here is pure: inputs are schema objects, patch text and the base
files; no file IO. `docs/reports.md` states each definition in prose.

Per instance (`InstanceMetrics`):
  - resolved, failure class (from the Grade; infra failures are never the model's result)
  - FAIL_TO_PASS fraction passed, PASS_TO_PASS fraction kept, PASS_TO_PASS broken
  - edit distance: line-level Levenshtein distance between the files as the model's
    patch leaves them and as the gold patch leaves them, summed over the union of
    files either patch touched; normalised by the gold patch's changed-line count
  - patch similarity: difflib ratio between the two patches' change lines
  - revert rate: see `revert_stats`
  - steps, tokens, model and environment time, format errors, tests touched
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from swerve.reports.diffapply import PatchApplyError, apply_patch, file_paths, hunk_lines, parse_patch, touched_paths
from swerve.schema import FailureClass, Grade, Step, Trajectory

UNGRADED = "ungraded"
ChangeEvent = tuple[str, str, str]


# ---------------------------------------------------------------- edit distance


def line_edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two line sequences (insert, delete, substitute a line: cost 1).

    Common leading and trailing lines are stripped first (patched files share most of
    their lines); the remaining middle uses a numpy row recurrence, so a 2,000-line
    rewrite costs milliseconds rather than seconds.
    """
    start = 0
    limit = min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    if not a or not b:
        return len(a) + len(b)
    if len(a) * len(b) <= 4096:
        return _levenshtein_small(a, b)
    return _levenshtein_numpy(a, b)


def _levenshtein_small(a: Sequence[str], b: Sequence[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, line_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, line_b in enumerate(b, start=1):
            current[j] = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (line_a != line_b),
            )
        previous = current
    return previous[-1]


def _levenshtein_numpy(a: Sequence[str], b: Sequence[str]) -> int:
    """Row recurrence with the insertion chain solved as a running minimum:
    cur[j] = min_k<=j (tmp[k] + j - k) = j + cummin(tmp - k)."""
    import numpy as np

    ids: dict[str, int] = {}
    a_ids = np.array([ids.setdefault(line, len(ids)) for line in a], dtype=np.int64)
    b_ids = np.array([ids.setdefault(line, len(ids)) for line in b], dtype=np.int64)
    columns = np.arange(len(b) + 1, dtype=np.int64)
    previous = columns.copy()
    for i, line_id in enumerate(a_ids, start=1):
        tmp = np.empty_like(previous)
        tmp[0] = i
        np.minimum(previous[1:] + 1, previous[:-1] + (b_ids != line_id), out=tmp[1:])
        previous = np.minimum.accumulate(tmp - columns) + columns
    return int(previous[-1])


def changed_line_count(patch: str) -> int:
    """Added plus removed lines in a unified diff (headers and context not counted)."""
    if not patch.strip():
        return 0
    return sum(
        1
        for patched in parse_patch(patch)
        for hunk in patched
        for kind, _ in hunk_lines(hunk)
        if kind in ("+", "-")
    )


@dataclass(frozen=True)
class EditDistance:
    raw: int
    gold_changed_lines: int

    @property
    def normalised(self) -> float | None:
        return self.raw / self.gold_changed_lines if self.gold_changed_lines else None


def edit_distance(base_files: Mapping[str, str | None], model_patch: str, gold_patch: str) -> EditDistance:
    """Line-level Levenshtein distance between the model's result and the gold result,
    summed over the union of files either patch touches (an absent or deleted file is
    an empty sequence of lines). Raises PatchApplyError when a patch does not apply."""
    model_files = apply_patch(base_files, model_patch)
    gold_files = apply_patch(base_files, gold_patch)
    paths = touched_paths(model_patch) | touched_paths(gold_patch)
    raw = 0
    for path in sorted(paths):
        model_text = model_files.get(path) or ""
        gold_text = gold_files.get(path) or ""
        raw += line_edit_distance(model_text.splitlines(), gold_text.splitlines())
    return EditDistance(raw=raw, gold_changed_lines=changed_line_count(gold_patch))


def change_lines(patch: str) -> list[str]:
    """The patch's added/removed lines as `path<TAB>+text`, in order: what a patch does,
    without the hunk offsets and context that differ between equivalent patches."""
    if not patch.strip():
        return []
    lines: list[str] = []
    for patched in parse_patch(patch):
        source, target = file_paths(patched)
        path = target if target is not None else source
        for hunk in patched:
            for kind, value in hunk_lines(hunk):
                if kind in ("+", "-"):
                    lines.append(f"{path}\t{kind}{value.rstrip(chr(10))}")
    return lines


def patch_similarity(model_patch: str, gold_patch: str) -> float:
    """difflib.SequenceMatcher ratio (0..1) between the two patches' change lines.
    Two empty patches are identical (1.0)."""
    model, gold = change_lines(model_patch), change_lines(gold_patch)
    if not model and not gold:
        return 1.0
    return difflib.SequenceMatcher(None, model, gold, autojunk=False).ratio()


# ---------------------------------------------------------------- revert rate


def change_events(diff: str) -> Counter[ChangeEvent]:
    """A repository diff (vs the base commit) as a multiset of line changes
    (path, '+' or '-', line text). Line numbers are ignored, so an edit elsewhere in
    the file does not look like a change of this line."""
    events: Counter[ChangeEvent] = Counter()
    for line in change_lines(diff):
        path, rest = line.split("\t", 1)
        events[(path, rest[0], rest[1:])] += 1
    return events


@dataclass(frozen=True)
class Reverts:
    changed: int
    reverted: int

    @property
    def rate(self) -> float | None:
        return self.reverted / self.changed if self.changed else None


def revert_stats(step_diffs: Iterable[str]) -> Reverts:
    """Of all line changes an agent made during a trajectory, how many it later undid.

    Each step's diff (the repository vs the base commit after that step) is a multiset
    of change events (path, +/-, line text). Going from one snapshot to the next,
    events that appear are changes made (counted each time they appear); events that
    disappear are changes undone. The run starts from the pristine base (no events).

        changed  = total events that appeared over the trajectory
        reverted = total events that disappeared later in the same trajectory
        rate     = reverted / changed   (undefined when nothing was changed)

    Rewriting an added line (`+x = 1` then `+x = 2`) undoes the first change; restoring
    a modified line to its base text undoes both its `-` and its `+` event.
    """
    changed = reverted = 0
    previous_text: str | None = ""
    previous: Counter[ChangeEvent] = Counter()
    for diff in step_diffs:
        if diff == previous_text:
            continue
        current = change_events(diff)
        changed += sum((current - previous).values())
        reverted += sum((previous - current).values())
        previous, previous_text = current, diff
    return Reverts(changed=changed, reverted=reverted)


# ---------------------------------------------------------------- tests


@dataclass(frozen=True)
class GradedTests:
    f2p_passed: int
    f2p_total: int
    p2p_kept: int
    p2p_total: int

    @property
    def p2p_broken(self) -> int:
        return self.p2p_total - self.p2p_kept

    @property
    def f2p_fraction(self) -> float | None:
        return self.f2p_passed / self.f2p_total if self.f2p_total else None

    @property
    def p2p_fraction(self) -> float | None:
        return self.p2p_kept / self.p2p_total if self.p2p_total else None

    @property
    def regression_rate(self) -> float | None:
        return self.p2p_broken / self.p2p_total if self.p2p_total else None


def graded_tests(grade: Grade) -> GradedTests:
    """FAIL_TO_PASS passed / total and PASS_TO_PASS kept / total from SWE-bench's
    `tests_status` (the grader already files missing and skipped tests under failure)."""
    f2p = grade.tests_status.get("FAIL_TO_PASS", {})
    p2p = grade.tests_status.get("PASS_TO_PASS", {})
    f2p_ok, f2p_bad = len(f2p.get("success", [])), len(f2p.get("failure", []))
    p2p_ok, p2p_bad = len(p2p.get("success", [])), len(p2p.get("failure", []))
    return GradedTests(f2p_passed=f2p_ok, f2p_total=f2p_ok + f2p_bad, p2p_kept=p2p_ok, p2p_total=p2p_ok + p2p_bad)


def failure_class_of(grade: Grade) -> str:
    """The Grade's failure class; for reports written by SWE-bench itself (which has no
    such field) it is inferred from SWE-bench's own keys."""
    if grade.failure_class is not FailureClass.NONE or grade.resolved:
        return grade.failure_class.value
    if grade.patch_is_None or not grade.patch_exists:
        return FailureClass.EMPTY_PATCH.value
    if not grade.patch_successfully_applied:
        return FailureClass.APPLY_FAILED.value
    return FailureClass.TESTS_FAILED.value


# ---------------------------------------------------------------- steps


def _usage(step: Step) -> dict[str, Any]:
    return step.usage if isinstance(step.usage, dict) else {}


def token_counts(steps: Sequence[Step]) -> tuple[int | None, int | None]:
    """(prompt tokens, completion tokens) summed over steps: token id lists when the
    step stored them, else the backend's `usage` counts; None when no step has either."""
    prompt = completion = 0
    seen_prompt = seen_completion = False
    for step in steps:
        usage = _usage(step)
        if step.prompt_token_ids is not None:
            prompt += len(step.prompt_token_ids)
            seen_prompt = True
        elif isinstance(usage.get("prompt_tokens"), int):
            prompt += usage["prompt_tokens"]
            seen_prompt = True
        if step.completion_token_ids is not None:
            completion += len(step.completion_token_ids)
            seen_completion = True
        elif isinstance(usage.get("completion_tokens"), int):
            completion += usage["completion_tokens"]
            seen_completion = True
    return (prompt if seen_prompt else None, completion if seen_completion else None)


# ---------------------------------------------------------------- one instance


@dataclass
class InstanceMetrics:
    """One row of the per-task table: everything measured about one instance in one run."""

    run: str
    instance_id: str
    repo: str = ""
    difficulty: str = "unknown"
    model: str = ""
    has_trajectory: bool = False
    graded: bool = False
    resolved: bool | None = None
    failure_class: str = UNGRADED
    exit_status: str = ""
    empty_patch: bool = False
    f2p_passed: int | None = None
    f2p_total: int | None = None
    f2p_fraction: float | None = None
    p2p_kept: int | None = None
    p2p_total: int | None = None
    p2p_fraction: float | None = None
    p2p_broken: int | None = None
    regression_rate: float | None = None
    tests_touched: int | None = None
    edit_distance: int | None = None
    edit_distance_normalised: float | None = None
    gold_changed_lines: int | None = None
    patch_similarity: float | None = None
    model_changed_lines: int | None = None
    changed_lines: int | None = None
    reverted_lines: int | None = None
    revert_rate: float | None = None
    steps: int | None = None
    format_errors: int | None = None
    format_error_rate: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    model_time_s: float | None = None
    env_time_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_infra(self) -> bool:
        return self.failure_class == FailureClass.INFRA.value

    @property
    def counts_for_model(self) -> bool:
        """Graded and not an infra failure: the instances a model's rates are computed over."""
        return self.graded and not self.is_infra

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["notes"] = "; ".join(self.notes)
        return row


def instance_metrics(
    *,
    run: str,
    instance_id: str,
    trajectory: Trajectory | None = None,
    grade: Grade | None = None,
    model_patch: str | None = None,
    gold_patch: str | None = None,
    base_files: Mapping[str, str | None] | None = None,
    repo: str = "",
    difficulty: str = "unknown",
    model: str = "",
) -> InstanceMetrics:
    """Measure one instance. Missing inputs (no grade, no gold patch, no base files, no
    trajectory) leave their metrics None; a patch that does not parse or apply leaves
    them None too and adds a note saying why. A partial run still gets every other score."""
    row = InstanceMetrics(run=run, instance_id=instance_id, repo=repo, difficulty=difficulty, model=model)
    if model_patch is None and trajectory is not None:
        model_patch = trajectory.final_patch
    patch = model_patch or ""
    row.empty_patch = not patch.strip()

    if grade is not None:
        counts = graded_tests(grade)
        row.graded = True
        row.resolved = bool(grade.resolved)
        row.failure_class = failure_class_of(grade)
        row.f2p_passed, row.f2p_total, row.f2p_fraction = counts.f2p_passed, counts.f2p_total, counts.f2p_fraction
        row.p2p_kept, row.p2p_total, row.p2p_fraction = counts.p2p_kept, counts.p2p_total, counts.p2p_fraction
        row.p2p_broken, row.regression_rate = counts.p2p_broken, counts.regression_rate
        row.tests_touched = len(grade.tests_touched)

    try:
        row.model_changed_lines = changed_line_count(patch)
    except PatchApplyError as exc:
        row.notes.append(f"model patch: {exc}")
    if gold_patch:
        try:
            row.patch_similarity = patch_similarity(patch, gold_patch)
        except PatchApplyError as exc:
            row.notes.append(f"patch similarity: {exc}")
        if base_files is not None:
            try:
                distance = edit_distance(base_files, patch, gold_patch)
                row.edit_distance = distance.raw
                row.gold_changed_lines = distance.gold_changed_lines
                row.edit_distance_normalised = distance.normalised
            except PatchApplyError as exc:
                row.notes.append(f"edit distance: {exc}")

    if trajectory is not None:
        _add_trajectory_metrics(row, trajectory)
    return row


def _add_trajectory_metrics(row: InstanceMetrics, trajectory: Trajectory) -> None:
    steps = trajectory.steps
    row.has_trajectory = True
    row.exit_status = trajectory.exit_status
    row.steps = len(steps)
    row.format_errors = sum(1 for step in steps if step.format_error)
    row.format_error_rate = row.format_errors / len(steps) if steps else None
    row.model_time_s = sum(step.model_time_s for step in steps)
    row.env_time_s = sum(step.env_time_s for step in steps)
    row.prompt_tokens, row.completion_tokens = token_counts(steps)
    if row.prompt_tokens is not None or row.completion_tokens is not None:
        row.total_tokens = (row.prompt_tokens or 0) + (row.completion_tokens or 0)
    try:
        reverts = revert_stats(step.diff for step in steps)
        row.changed_lines, row.reverted_lines, row.revert_rate = reverts.changed, reverts.reverted, reverts.rate
    except PatchApplyError as exc:
        row.notes.append(f"revert rate: a step diff {exc}")


# ---------------------------------------------------------------- one run


def _mean(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(present) / len(present) if present else None


def _median(values: Iterable[float | int | None]) -> float | None:
    present = sorted(float(v) for v in values if v is not None)
    if not present:
        return None
    middle = len(present) // 2
    return present[middle] if len(present) % 2 else (present[middle - 1] + present[middle]) / 2


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def run_metrics(rows: Sequence[InstanceMetrics]) -> dict[str, Any]:
    """Run-level scores. Rates over tests and patches are computed over the instances
    that count for the model (graded, not an infra failure); infra failures and
    ungraded instances are counted separately, never as unresolved."""
    scored = [row for row in rows if row.counts_for_model]
    with_trajectory = [row for row in rows if row.has_trajectory]
    resolved = sum(1 for row in scored if row.resolved)
    steps_total = sum(row.steps or 0 for row in with_trajectory)
    changed = sum(row.changed_lines or 0 for row in with_trajectory)
    reverted = sum(row.reverted_lines or 0 for row in with_trajectory)
    return {
        "instances": len(rows),
        "graded": sum(1 for row in rows if row.graded),
        "ungraded": sum(1 for row in rows if not row.graded and not row.is_infra),
        "infra_failures": sum(1 for row in rows if row.is_infra),
        "scored": len(scored),
        "resolved": resolved,
        "resolved_rate": _ratio(resolved, len(scored)),
        "f2p_fraction": _mean(row.f2p_fraction for row in scored),
        "p2p_fraction": _mean(row.p2p_fraction for row in scored),
        "regression_rate": _ratio(sum(1 for row in scored if row.p2p_broken), len(scored)),
        "empty_patch_rate": _ratio(sum(1 for row in scored if row.empty_patch), len(scored)),
        "tests_touched_rate": _ratio(sum(1 for row in scored if row.tests_touched), len(scored)),
        "edit_distance_mean": _mean(row.edit_distance for row in rows),
        "edit_distance_normalised_mean": _mean(row.edit_distance_normalised for row in rows),
        "edit_distance_normalised_median": _median(row.edit_distance_normalised for row in rows),
        "patch_similarity_mean": _mean(row.patch_similarity for row in rows),
        "trajectories": len(with_trajectory),
        "revert_rate": _ratio(reverted, changed),
        "revert_rate_mean": _mean(row.revert_rate for row in with_trajectory),
        "steps_mean": _mean(row.steps for row in with_trajectory),
        "format_error_rate": _ratio(sum(row.format_errors or 0 for row in with_trajectory), steps_total),
        "prompt_tokens_mean": _mean(row.prompt_tokens for row in with_trajectory),
        "completion_tokens_mean": _mean(row.completion_tokens for row in with_trajectory),
        "total_tokens": sum(row.total_tokens or 0 for row in with_trajectory),
        "model_time_s": sum(row.model_time_s or 0.0 for row in with_trajectory),
        "env_time_s": sum(row.env_time_s or 0.0 for row in with_trajectory),
        "failure_classes": dict(Counter(row.failure_class for row in rows).most_common()),
    }
