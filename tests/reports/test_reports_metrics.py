"""Each metric's definition, checked on a small example computed by hand."""

from __future__ import annotations

import random

import pytest

from swerve.reports.metrics import (
    InstanceMetrics,
    _levenshtein_numpy,
    _levenshtein_small,
    changed_line_count,
    edit_distance,
    instance_metrics,
    line_edit_distance,
    patch_similarity,
    revert_stats,
    run_metrics,
    graded_tests,
    token_counts,
)
from swerve.reports.synthetic import unified_diff
from swerve.schema import FailureClass, Grade, Step, Trajectory

BASE = "a\nb\nc\nd\n"
GOLD_TEXT = "a\nB\nc\nD\n"  # gold changes b -> B and d -> D
GOLD = unified_diff("f.py", BASE, GOLD_TEXT)


def test_line_edit_distance_worked_example():
    # [x y z] -> [x q z w]: substitute y->q (1) + insert w (1) = 2
    assert line_edit_distance(["x", "y", "z"], ["x", "q", "z", "w"]) == 2
    # kitten -> sitting, one "line" per letter: k->s, e->i, insert g = 3
    assert line_edit_distance(list("kitten"), list("sitting")) == 3
    assert line_edit_distance([], ["a", "b"]) == 2
    assert line_edit_distance(["a"], ["a"]) == 0


def test_large_inputs_take_the_numpy_path_with_the_same_answer():
    # 100 lines; every 10th replaced: 10 substitutions. The middle left after trimming the
    # common prefix/suffix is 91 x 91 lines (> 4096 cells), so the numpy recurrence runs.
    a = [f"l{i}" for i in range(100)]
    b = ["X" if i % 10 == 0 else line for i, line in enumerate(a)]
    assert line_edit_distance(a, b) == 10
    rng = random.Random(3)
    for _ in range(20):
        x = [rng.choice("abcd") for _ in range(rng.randrange(1, 40))]
        y = [rng.choice("abcd") for _ in range(rng.randrange(1, 40))]
        assert _levenshtein_numpy(x, y) == _levenshtein_small(x, y)


def test_changed_line_count_counts_added_and_removed_lines():
    # -b +B -d +D
    assert changed_line_count(GOLD) == 4
    assert changed_line_count("") == 0


def test_edit_distance_worked_example():
    # The model fixes b -> B but not d, and adds a 2-line file g.py the gold patch does not have.
    model = unified_diff("f.py", BASE, "a\nB\nc\nd\n") + unified_diff("g.py", None, "x\ny\n")
    result = edit_distance({"f.py": BASE, "g.py": None}, model, GOLD)
    # f.py: [a B c d] vs [a B c D] -> 1 substitution; g.py: 2 lines vs absent -> 2 deletions
    # raw = 3; gold changed lines = 4 (-b +B -d +D); normalised = 3 / 4
    assert result.raw == 3
    assert result.gold_changed_lines == 4
    assert result.normalised == pytest.approx(0.75)


def test_edit_distance_of_the_gold_patch_itself_is_zero_and_of_no_patch_is_positive():
    assert edit_distance({"f.py": BASE}, GOLD, GOLD).raw == 0
    # empty patch: [a b c d] vs [a B c D] -> 2 substitutions; 2 / 4
    assert edit_distance({"f.py": BASE}, "", GOLD).normalised == pytest.approx(0.5)


def test_patch_similarity_worked_example():
    model = unified_diff("f.py", BASE, "a\nB\nc\nd\n")
    # change lines: model [f -b, f +B]; gold [f -b, f +B, f -d, f +D]
    # SequenceMatcher ratio = 2 * matches / total = 2 * 2 / (2 + 4) = 0.667
    assert patch_similarity(model, GOLD) == pytest.approx(2 * 2 / 6)
    assert patch_similarity(GOLD, GOLD) == 1.0
    assert patch_similarity("", "") == 1.0
    assert patch_similarity("", GOLD) == 0.0


def test_revert_rate_worked_example():
    diffs = [
        "",  # step 0 looks around: no events
        unified_diff("f.py", BASE, "a\nB\nc\nd\n"),  # step 1: {-b, +B} appear: changed 2
        unified_diff("f.py", BASE, "a\nB\nc\nD\n"),  # step 2: {-d, +D} appear: changed 4
        unified_diff("f.py", BASE, "a\nB\nc\nD\n"),  # step 3: same snapshot, nothing new
        unified_diff("f.py", BASE, "a\nB2\nc\nd\n"),  # step 4: d restored, B rewritten as B2
        # step 4: disappear +B, -d, +D -> reverted 3; appear +B2 -> changed 5
    ]
    stats = revert_stats(diffs)
    assert (stats.changed, stats.reverted) == (5, 3)
    assert stats.rate == pytest.approx(3 / 5)


def test_revert_rate_is_undefined_without_changes_and_zero_without_reverts():
    assert revert_stats(["", ""]).rate is None
    assert revert_stats(["", GOLD, GOLD]).rate == 0.0
    # add a line then take it back: 1 change, 1 revert
    added = unified_diff("f.py", BASE, BASE + "e\n")
    assert revert_stats([added, ""]).rate == 1.0


def test_revert_events_ignore_line_numbers():
    # Inserting a line above an existing change moves it but does not undo it:
    # step 1 {+x}; step 2 {+top, +x}: changed 2, reverted 0.
    first = unified_diff("f.py", BASE, "a\nb\nc\nd\nx\n")
    second = unified_diff("f.py", BASE, "top\na\nb\nc\nd\nx\n")
    assert revert_stats([first, second]).reverted == 0


def _grade(**kwargs) -> Grade:
    return Grade(instance_id="i", **kwargs)


def test_graded_tests_worked_example():
    grade = _grade(
        tests_status={
            "FAIL_TO_PASS": {"success": ["t1"], "failure": ["t2", "t3"]},
            "PASS_TO_PASS": {"success": ["p1", "p2", "p3"], "failure": ["p4"]},
        }
    )
    counts = graded_tests(grade)
    # F2P 1 of 3 passed; P2P 3 of 4 kept, 1 broken -> regression rate 1/4
    assert counts.f2p_fraction == pytest.approx(1 / 3)
    assert counts.p2p_fraction == pytest.approx(3 / 4)
    assert counts.p2p_broken == 1
    assert counts.regression_rate == pytest.approx(0.25)
    assert graded_tests(_grade()).f2p_fraction is None


def test_token_counts_prefer_ids_then_usage():
    steps = [
        Step(index=0, prompt_token_ids=[1, 2, 3], completion_token_ids=[4, 5]),
        Step(index=1, usage={"prompt_tokens": 10, "completion_tokens": 7}),
        Step(index=2),
    ]
    # prompt 3 + 10 = 13; completion 2 + 7 = 9
    assert token_counts(steps) == (13, 9)
    assert token_counts([Step(index=0)]) == (None, None)


def _trajectory(steps: int, format_errors: int, diffs: list[str]) -> Trajectory:
    return Trajectory(
        instance_id="x",
        steps=[
            Step(index=i, format_error="bad" if i < format_errors else None, diff=diffs[i] if i < len(diffs) else diffs[-1],
                 model_time_s=1.0, env_time_s=0.5)
            for i in range(steps)
        ],
    )


def test_instance_metrics_combines_the_pieces():
    model = unified_diff("f.py", BASE, "a\nB\nc\nd\n")
    trajectory = _trajectory(4, 1, ["", model])
    grade = _grade(resolved=False, failure_class=FailureClass.TESTS_FAILED, tests_touched=["tests/conftest.py"])
    row = instance_metrics(run="r", instance_id="x", trajectory=trajectory, grade=grade, model_patch=model,
                           gold_patch=GOLD, base_files={"f.py": BASE})
    assert row.steps == 4 and row.format_errors == 1 and row.format_error_rate == 0.25
    assert row.model_time_s == 4.0 and row.env_time_s == 2.0
    assert row.edit_distance == 1 and row.edit_distance_normalised == 0.25
    assert row.tests_touched == 1 and row.failure_class == "tests_failed"
    assert row.changed_lines == 2 and row.revert_rate == 0.0
    assert row.notes == []


def test_a_patch_that_does_not_apply_leaves_edit_distance_empty_with_a_note():
    bad = unified_diff("f.py", "zzz\n", "yyy\n")
    row = instance_metrics(run="r", instance_id="x", model_patch=bad, gold_patch=GOLD, base_files={"f.py": BASE})
    assert row.edit_distance is None
    assert any("edit distance" in note and "f.py" in note for note in row.notes)


def _row(instance_id: str, **fields) -> InstanceMetrics:
    return InstanceMetrics(run="r", instance_id=instance_id, **fields)


def test_run_metrics_worked_example():
    rows = [
        # A: resolved, 4 steps (1 format error), changed 4 lines, reverted 1
        _row("A", graded=True, resolved=True, failure_class="none", has_trajectory=True, steps=4, format_errors=1,
             changed_lines=4, reverted_lines=1, revert_rate=0.25, p2p_broken=0, tests_touched=0),
        # B: unresolved, 1 PASS_TO_PASS broken, touched tests, 6 steps, changed 2 reverted 2
        _row("B", graded=True, resolved=False, failure_class="tests_failed", has_trajectory=True, steps=6,
             format_errors=0, changed_lines=2, reverted_lines=2, revert_rate=1.0, p2p_broken=1, tests_touched=1),
        # C: an infra failure: not the model's result
        _row("C", graded=True, resolved=False, failure_class="infra"),
        # D: never graded
        _row("D"),
    ]
    metrics = run_metrics(rows)
    # scored = A, B (graded, not infra): resolved 1/2; regression 1/2 (B); tests touched 1/2
    assert metrics["scored"] == 2 and metrics["infra_failures"] == 1 and metrics["ungraded"] == 1
    assert metrics["resolved_rate"] == 0.5
    assert metrics["regression_rate"] == 0.5
    assert metrics["tests_touched_rate"] == 0.5
    # format errors pooled over steps: (1 + 0) / (4 + 6) = 0.1
    assert metrics["format_error_rate"] == pytest.approx(0.1)
    # revert rate pooled: (1 + 2) / (4 + 2) = 0.5; mean of per-trajectory rates: (0.25 + 1.0) / 2
    assert metrics["revert_rate"] == pytest.approx(0.5)
    assert metrics["revert_rate_mean"] == pytest.approx(0.625)
    assert metrics["steps_mean"] == 5
    assert metrics["failure_classes"] == {"none": 1, "tests_failed": 1, "infra": 1, "ungraded": 1}
