"""End to end: mint tasks from a real PyPI project in Docker, then check every written
task with the evaluator (gold resolves, empty and no-op patches do not) and that its
FAIL_TO_PASS tests are hidden from the base commit; a re-run resumes without duplicates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from swerve.environments.sources import prepare_repo
from swerve.harness.evaluate import evaluate
from swerve.harness.mint import MintError, creation_diff, hidden_from_base, mint_tasks
from swerve.harness.tasks import load_tasks
from swerve.schema import Prediction

SOURCE = "pypi:toolz==0.12.1"


@pytest.mark.docker
def test_mint_from_pypi_end_to_end(docker_client, tmp_path: Path):
    out = tmp_path / "toolz.jsonl"
    report = mint_tasks(SOURCE, out, max_tasks=2, seed=0, include=["toolz/dicttoolz.py"], backend="docker",
                        timeout=180, max_candidates=40)
    assert report.baseline_passed >= 0.8 * report.baseline_total
    tasks = load_tasks(out)
    assert 1 <= len(tasks) <= 2
    assert [t.instance_id for t in tasks] == report.accepted

    for task in tasks:
        assert task.instance_id.startswith("pytoolz__toolz-0.12.1-m")
        assert task.FAIL_TO_PASS and task.PASS_TO_PASS
        assert task.difficulty["n_fail_to_pass"] == len(task.FAIL_TO_PASS)
        assert task.difficulty["mutation_kind"] and task.difficulty["lines_changed"] >= 1
        assert task.base_commit == prepare_repo(task).base_commit
        assert hidden_from_base(task) == []
        base_tree = prepare_repo(task).path
        for test in [t for t in task.FAIL_TO_PASS if t.count("::") == 1]:
            name = test.split("::")[-1].split("[")[0]
            path = base_tree / test.split("::")[0]
            assert not path.exists() or not re.search(rf"def {re.escape(name)}\(", path.read_text())
        assert "dicttoolz.py" not in task.problem_statement
        assert "diff" not in task.problem_statement.lower()

    noop = creation_diff("NOTES.txt", "nothing\n")
    for name, patch, should_resolve in (("gold", None, True), ("empty", "", False), ("noop", noop, False)):
        predictions = {
            t.instance_id: Prediction(instance_id=t.instance_id, model_name_or_path=name,
                                      model_patch=t.patch if patch is None else patch)
            for t in tasks
        }
        run = evaluate(tasks, predictions, run_id=name, output_dir=tmp_path / "eval", backend="docker", timeout=300)
        assert not run.errors, run.errors
        for task in tasks:
            assert run.grades[task.instance_id].resolved is should_resolve, (name, task.instance_id)

    again = mint_tasks(SOURCE, out, max_tasks=len(tasks), seed=0, include=["toolz/dicttoolz.py"], backend="docker")
    assert again.accepted == [] and again.previously_minted == len(tasks)
    assert [t.instance_id for t in load_tasks(out)] == [t.instance_id for t in tasks]


@pytest.mark.docker
def test_seed_without_valid_bug_fails_cleanly(docker_client, tmp_path: Path):
    out = tmp_path / "tasks.jsonl"
    out.write_text('{"instance_id": "keep", "repo": "a/b"}\n')
    with pytest.raises(MintError, match="produced no valid bug"):
        mint_tasks(SOURCE, out, max_tasks=1, seed=0, include=["toolz/compatibility.py"], backend="docker",
                   max_candidates=2, validate=False)
    assert out.read_text() == '{"instance_id": "keep", "repo": "a/b"}\n'
