"""The stochastic oracle: seeded, gold with probability p, otherwise a near miss or partial fix."""

from __future__ import annotations

import random
import subprocess

import pytest
from agents_fake_env import GOLD_PATCH, calc_repo, calc_task, scratch_env

from swerve.agents.loop import run_episode
from swerve.agents.policies import make_policy
from swerve.agents.policies.stochastic import StochasticOraclePolicy, parse_stochastic_argument, solves, wrong_patch
from swerve.harness.tasks import load_tasks


def test_spec_parses_p_and_refuses_bad_values():
    assert parse_stochastic_argument("oracle-stochastic:p=0.3", "p=0.3").p == 0.3
    assert parse_stochastic_argument("oracle-stochastic", "").p == 0.5
    with pytest.raises(ValueError, match="not a probability"):
        parse_stochastic_argument("oracle-stochastic:p=2", "p=2")
    with pytest.raises(ValueError, match="unknown option 'q'"):
        parse_stochastic_argument("oracle-stochastic:q=1", "q=1")
    policy = make_policy("oracle-stochastic:p=0.25", task=calc_task(), seed=7)
    assert isinstance(policy, StochasticOraclePolicy) and policy.p == 0.25 and policy.seed == 7


def test_outcome_is_deterministic_per_seed_and_near_p_over_seeds():
    task = calc_task()
    assert [solves(task, 0.3, seed) for seed in range(50)] == [solves(task, 0.3, seed) for seed in range(50)]
    rate = sum(solves(task, 0.3, seed) for seed in range(2000)) / 2000
    assert 0.26 < rate < 0.34
    assert not any(solves(task, 0.0, seed) for seed in range(100))
    assert all(solves(task, 1.0, seed) for seed in range(100))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_episode_submits_gold_exactly_when_the_draw_says_so(tmp_path, seed):
    task = calc_task(with_tests=False)
    env = scratch_env(calc_repo(tmp_path / "repo"))
    trajectory = run_episode(task, env, make_policy("oracle-stochastic:p=0.5", task=task, seed=seed))
    assert trajectory.exit_status == "submitted"
    assert "solves" not in str(trajectory.manifest)
    gold_changed = "+    return a + b" in trajectory.final_patch and "helpers.py" in trajectory.final_patch
    assert gold_changed == solves(task, 0.5, seed)
    if not gold_changed:
        assert trajectory.final_patch.strip(), "a wrong attempt still edits something"


def test_wrong_patches_apply_differ_from_gold_and_vary(tmp_path):
    repo = calc_repo(tmp_path / "repo")
    variants = {wrong_patch(GOLD_PATCH, random.Random(seed)) for seed in range(40)}
    assert len(variants) >= 3
    for variant in variants:
        assert variant and variant != GOLD_PATCH
        subprocess.run(["git", "apply", "--check", "-"], input=variant, text=True, cwd=repo, check=True)


def test_bundled_smoke_tasks_each_have_wrong_variants():
    for task in load_tasks("examples/smoke.jsonl"):
        variants = {wrong_patch(task.patch, random.Random(seed)) for seed in range(30)}
        assert None not in variants and len(variants) >= 2, task.instance_id
