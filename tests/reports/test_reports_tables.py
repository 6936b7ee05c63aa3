"""Tables per task, repository, difficulty and run; the paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from swerve.reports.scan import scan_run
from swerve.reports.taskinfo import load_task_infos
from swerve.reports.tables import all_tables, compare_table, group_table, paired_bootstrap_ci, runs_table, tasks_table


def test_bootstrap_worked_examples():
    # every pair differs by +1: every resample has mean 1 -> (1, 1)
    assert paired_bootstrap_ci([1, 1, 1], [0, 0, 0]) == (1.0, 1.0)
    # differences [1, 0]: a resample of 2 has mean 0, 0.5 or 1 with probability 1/4, 1/2, 1/4;
    # the 2.5th and 97.5th percentiles fall inside the outer masses -> (0, 1)
    assert paired_bootstrap_ci([1, 0], [0, 0]) == (0.0, 1.0)
    assert paired_bootstrap_ci([], []) is None


def test_bootstrap_is_seeded_and_matches_naive_resampling():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 200)
    b = rng.integers(0, 2, 200)
    first = paired_bootstrap_ci(a, b, seed=4)
    assert first == paired_bootstrap_ci(a, b, seed=4)
    # the multinomial shortcut draws the same distribution as resampling indices
    naive_rng = np.random.default_rng(9)
    d = a - b
    naive = np.percentile([d[naive_rng.integers(0, 200, 200)].mean() for _ in range(4000)], [2.5, 97.5])
    fast = paired_bootstrap_ci(a, b, samples=4000, seed=9)
    assert fast[0] == pytest.approx(naive[0], abs=0.02)
    assert fast[1] == pytest.approx(naive[1], abs=0.02)
    assert fast[0] < (a - b).mean() < fast[1]


def test_tables_over_two_runs(two_runs):
    tasks_file, baseline, better = two_runs
    tasks = load_task_infos(tasks_file)
    scans = [scan_run(baseline, tasks), scan_run(better, tasks)]
    runs = runs_table(scans)
    assert list(runs.index) == ["baseline", "better"]
    assert runs.loc["better", "model"] == "big-model"

    compare = compare_table(scans)
    assert len(compare) == 1
    row = compare.iloc[0]
    base_rate, run_rate = row["baseline_resolved_rate"], row["run_resolved_rate"]
    assert row["difference"] == pytest.approx(run_rate - base_rate)
    assert row["ci_low"] <= row["difference"] <= row["ci_high"]
    assert row["run_only_resolved"] - row["baseline_only_resolved"] == round(row["difference"] * row["paired_instances"])

    repos = group_table(scans, "repo")
    assert set(repos["repo"]) == {"acme/widgets", "acme/gadgets", "example/parser"}
    # group counts add up to the run's count
    assert repos.groupby("run")["instances"].sum().to_dict() == {"baseline": 30, "better": 30}
    difficulty = group_table(scans, "difficulty")
    assert set(difficulty["difficulty"]) <= {"easy", "medium", "hard"}

    tasks_frame = tasks_table(scans)
    assert len(tasks_frame) == 60
    assert tasks_frame.columns[0] == "run" and "edit_distance_normalised" in tasks_frame.columns
    assert set(all_tables(scans)) == {"runs", "compare", "repos", "difficulty", "tasks", "problems"}


def test_one_run_has_no_comparison(two_runs):
    _, baseline, _ = two_runs
    assert compare_table([scan_run(baseline)]).empty


def test_minted_tasks_are_grouped_by_the_size_of_their_fix():
    from swerve.reports.taskinfo import difficulty_label

    assert difficulty_label({"lines_changed": 1, "n_fail_to_pass": 3, "mutation_kind": "off_by_one"}) == "1 line"
    assert difficulty_label({"lines_changed": 3, "mutation_kind": "swap_branches"}) == "2-3 lines"
    assert difficulty_label({"lines_changed": 7}) == "4+ lines"
    assert difficulty_label({"label": "hard", "lines_changed": 1}) == "hard"
