"""pass@k: the unbiased estimator, its bootstrap interval, and reading a multi-attempt run folder."""

from __future__ import annotations

import glob
import json
from itertools import combinations

import pytest

from swerve.agents.policies.stochastic import solves
from swerve.harness.tasks import load_tasks
from swerve.reports.attempts import (
    attempts_html,
    is_multi_attempt,
    pass_at_k,
    read_outcomes,
    score_attempts,
)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_estimator_equals_brute_force_over_every_subset(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(combinations(range(n), k))
            brute = sum(any(outcomes[i] for i in subset) for subset in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_estimator_refuses_impossible_counts():
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(3, 1, 4)


def test_stochastic_oracle_pass_at_k_matches_its_exact_expectation_on_the_bundled_examples():
    """p = 0.3, N = 8, the policy's own draws on every bundled example task: the exact
    expectation 1 - (1-p)^k lies inside the bootstrap interval for every k."""
    tasks = {t.instance_id: t for path in sorted(glob.glob("examples/*.jsonl")) for t in load_tasks(path)}
    outcomes = {iid: [solves(task, 0.3, seed) for seed in range(8)] for iid, task in tasks.items()}
    scores = score_attempts(outcomes, samples=1000, seed=0)
    assert scores.attempts == 8 and scores.tasks == len(tasks) >= 30
    for k in range(1, 9):
        low, high = scores.pass_at_ci[k]
        assert low <= 1 - 0.7 ** k <= high, (k, scores.pass_at[k], low, high)
    assert scores.pass_at[1] == pytest.approx(sum(map(sum, outcomes.values())) / (8 * len(tasks)))
    assert all(scores.pass_at[k] <= scores.pass_at[k + 1] for k in range(1, 8))


def test_spread_and_solves():
    scores = score_attempts({"a": [True, False, True], "b": [False, False, True]}, samples=200)
    assert scores.solves == {"a": 2, "b": 1}
    assert scores.per_attempt_rate == [0.5, 0.0, 1.0]
    assert scores.spread["min"] == 0.0 and scores.spread["max"] == 1.0
    assert scores.pass_at[3] == 1.0 and scores.pass_at[1] == pytest.approx(0.5)


def _grade(folder, instance_id, resolved):
    report = folder / "instances" / instance_id / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({instance_id: {"instance_id": instance_id, "resolved": resolved}}))


def test_reads_a_multi_attempt_folder_and_renders_the_curve(tmp_path):
    run = tmp_path / "run"
    (run / "attempts").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"kind": "attempts", "attempts": 2}))
    for k, results in ((1, {"x": True, "y": False}), (2, {"x": False, "y": False})):
        folder = run / "attempts" / f"run-a{k}"
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"attempt": k}))
        for iid, resolved in results.items():
            _grade(folder, iid, resolved)
    assert is_multi_attempt(run) and not is_multi_attempt(run / "attempts" / "run-a1")
    assert read_outcomes(run) == {"x": [True, False], "y": [False, False]}
    page = attempts_html("run", score_attempts(read_outcomes(run), samples=100), {"tests": 0.5})
    assert "data:image/png;base64," in page and "pass@k" in page and "selected (tests)" in page
    with pytest.raises(ValueError, match="--evaluate"):
        score_attempts({})


def test_paired_comparison_of_two_multi_attempt_runs():
    from swerve.reports.attempts import compare_attempts

    baseline = {"a": [False, False], "b": [True, False], "c": [False, False]}
    better = {"a": [True, True], "b": [True, True], "c": [True, False], "d": [True, True]}
    result = compare_attempts(baseline, better, samples=500)
    assert result["paired_tasks"] == 3
    assert result["difference"] == pytest.approx((1 + 0.5 + 0.5) / 3 + 0 - 0)
    assert 0 < result["ci_low"] <= result["difference"] <= result["ci_high"]
    with pytest.raises(ValueError, match="share no"):
        compare_attempts({"x": [True]}, {"y": [True]})
