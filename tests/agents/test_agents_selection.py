"""swerve select: blind task views, the tests / consensus / judge strategies, a run folder."""

from __future__ import annotations

import json

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.attempts import run_attempts
from swerve.agents.policies import make_policy
from swerve.agents.policies.stochastic import solves
from swerve.agents.selection import (
    HIDDEN_FIELDS,
    Candidate,
    TaskView,
    assert_blind,
    judge_messages,
    load_candidates,
    normalised_diff,
    parse_strategy,
    select_for_task,
    select_run,
    task_view,
)
from swerve.schema import Completion

GOLD = calc_task().patch
WRONG_ADD = GOLD.replace("+    return a + b", "+    return b - a")
NOT_APPLYING = GOLD.replace("-    return a - b", "-    return a / b")


def _mul_breaking_patch():
    return (
        "--- a/calc.py\n+++ b/calc.py\n@@ -1,6 +1,6 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
        " \n \n def mul(a, b):\n-    return a * b\n+    return a + b\n"
    )


def test_the_view_holds_nothing_hidden():
    task = calc_task()
    view = task_view(task)
    for name in HIDDEN_FIELDS:
        assert not hasattr(view, name)
    assert_blind(view, secrets_of=task)
    assert task.test_patch not in json.dumps(view.__dict__) and "test_add" not in json.dumps(view.__dict__)
    with pytest.raises(TypeError, match="TaskView"):
        assert_blind(task)
    with pytest.raises(TypeError, match="TaskView"):
        select_for_task(task, [Candidate("x", 1, GOLD, "submitted")], ["consensus"])
    leaky = TaskView(task.instance_id, task.repo, task.problem_statement + task.patch, "", "")
    with pytest.raises(AssertionError, match="patch"):
        assert_blind(leaky, secrets_of=task)


def test_strategy_parsing():
    assert parse_strategy("tests,consensus") == ["tests", "consensus"]
    assert parse_strategy("tests,judge:openai:m@http://h:1/v1?temperature=0,consensus") == [
        "tests", "judge:openai:m@http://h:1/v1?temperature=0", "consensus"]
    with pytest.raises(ValueError, match="not a strategy"):
        parse_strategy("vote")
    with pytest.raises(ValueError, match="not a strategy"):
        parse_strategy("judge")


def test_normalised_diff_ignores_positions_and_whitespace():
    moved = GOLD.replace("@@ -1,5 +1,5 @@", "@@ -3,5 +3,5 @@").replace("+    return a + b", "+    return  a + b")
    assert normalised_diff(moved) == normalised_diff(GOLD) != normalised_diff(WRONG_ADD)


def test_consensus_picks_the_largest_group():
    view = task_view(calc_task())
    candidates = [Candidate("c", 1, WRONG_ADD, "submitted"), Candidate("c", 2, GOLD, "submitted"),
                  Candidate("c", 3, "", "submitted"),
                  Candidate("c", 4, GOLD.replace("@@ -1,5 +1,5 @@", "@@ -2,5 +2,5 @@"), "submitted")]
    assert select_for_task(view, candidates, ["consensus"]).attempt == 2


def test_tests_strategy_prefers_a_patch_that_breaks_no_visible_test(tmp_path):
    task = calc_task()
    view = task_view(task)
    opened = []

    def open_env():
        env = scratch_env(calc_repo(tmp_path / f"env{len(opened)}"))
        opened.append(env)
        return env

    candidates = [Candidate("c", 1, NOT_APPLYING, "submitted"), Candidate("c", 2, _mul_breaking_patch(), "submitted"),
                  Candidate("c", 3, GOLD, "submitted")]
    chosen = select_for_task(view, candidates, ["tests"], open_env=open_env)
    assert chosen.attempt == 3 and chosen.scores["tests"] == 0
    assert candidates[1].scores["tests"] == -1 and candidates[0].scores["tests"] < -1000
    commands = "\n".join(command for env in opened for command in env.commands)
    assert "test_add" not in commands and task.test_patch not in commands, "hidden tests never reach the env"
    assert all("test_add" not in name for c in candidates[1:] for name in c.behaviour)


def test_judge_sees_issue_diff_and_actions_but_no_hidden_tests():
    task = calc_task()
    view = task_view(task)
    seen = []

    class Judge:
        name = "fake-judge"

        def act(self, messages, tools):
            seen.append(messages[0]["content"])
            return Completion(text="<score>9</score>" if "+    return a + b" in messages[0]["content"] else "<score>2</score>")

    candidates = [Candidate("c", 1, WRONG_ADD, "submitted", ["bash: pytest -> exit 1"]),
                  Candidate("c", 2, GOLD, "submitted")]
    chosen = select_for_task(view, candidates, ["judge:fake"], judge=Judge())
    assert chosen.attempt == 2 and chosen.scores["judge"] == 9.0
    assert len(seen) == 2 and task.problem_statement in seen[0] and "bash: pytest -> exit 1" in seen[0]
    for prompt in seen:
        assert task.test_patch not in prompt and "test_add" not in prompt
    assert "<score>" in judge_messages(view, candidates[0])[0]["content"]


def test_select_run_writes_predictions_and_beats_the_average_attempt(tmp_path):
    tasks = [calc_task(f"fake__calc-{i}", with_tests=False) for i in range(4)]
    out = tmp_path / "many"
    count = {"n": 0}

    def open_env(task, *args):
        count["n"] += 1
        return scratch_env(calc_repo(tmp_path / f"env{count['n']}"), task.instance_id)

    def factory_for_seed(seed):
        return lambda task: make_policy("oracle-stochastic:p=0.4", task=task, seed=seed)

    run_attempts(tasks, factory_for_seed, attempts=5, out_dir=out, open_env=open_env, progress=False,
                 policy_spec="oracle-stochastic:p=0.4")
    summary = select_run(out, tasks, "consensus", open_env=open_env)
    rows = [json.loads(line) for line in (out / "selections" / "consensus.jsonl").read_text().splitlines()]
    assert summary["tasks"] == len(rows) == 4
    assert {"instance_id", "model_name_or_path", "model_patch", "attempt"} <= set(rows[0])
    for row in rows:
        task = next(t for t in tasks if t.instance_id == row["instance_id"])
        assert row["model_patch"] == next(
            c for c in load_candidates(out)[task.instance_id]
            if c.attempt == row["attempt"]).patch
        if any(solves(task, 0.4, seed) for seed in range(5)) and sum(solves(task, 0.4, s) for s in range(5)) >= 2:
            assert solves(task, 0.4, row["attempt"] - 1), "two or more equal gold attempts outvote diverse misses"
    with pytest.raises(ValueError, match="lacks"):
        select_run(out, tasks[:1], "consensus", open_env=open_env)


def test_consensus_beats_pass_at_1_on_the_bundled_examples_with_the_stochastic_oracle():
    """p = 0.3, N = 8 on every bundled example task: the patches the stochastic oracle's
    attempts would make (gold, or a near miss / partial fix), graded by its own draw."""
    import glob

    from swerve.agents.policies.stochastic import StochasticOraclePolicy
    from swerve.harness.tasks import load_tasks

    tasks = {t.instance_id: t for path in sorted(glob.glob("examples/*.jsonl")) for t in load_tasks(path)}
    pass_at_1 = consensus = 0.0
    for instance_id, task in tasks.items():
        candidates, outcomes = [], []
        for attempt in range(1, 9):
            policy = StochasticOraclePolicy(task, 0.3, attempt - 1)
            candidates.append(Candidate(instance_id, attempt, policy._inner.task.patch if policy._inner else "",
                                        "submitted"))
            outcomes.append(solves(task, 0.3, attempt - 1))
        pass_at_1 += sum(outcomes) / 8
        consensus += outcomes[select_for_task(task_view(task), candidates, ["consensus"]).attempt - 1]
    pass_at_1, consensus = pass_at_1 / len(tasks), consensus / len(tasks)
    assert len(tasks) >= 30
    assert consensus > pass_at_1 + 0.15, (consensus, pass_at_1)


def test_select_and_teach_pairs_bad_input_is_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from swerve.cli import app

    runner = CliRunner()
    empty = runner.invoke(app, ["select", str(tmp_path), "--tasks", "examples/smoke.jsonl", "--strategy", "consensus"])
    assert empty.exit_code == 2 and "has no attempts" in empty.output
    unknown = runner.invoke(app, ["select", str(tmp_path), "--tasks", "examples/smoke.jsonl", "--strategy", "vote"])
    assert unknown.exit_code == 2 and "'vote' is not a strategy" in unknown.output
    pairs = runner.invoke(app, ["teach", "--tasks", "examples/smoke.jsonl", "--policy", "oracle", "--pairs",
                                "--out", str(tmp_path / "t")])
    assert pairs.exit_code == 2 and "--attempts" in pairs.output
