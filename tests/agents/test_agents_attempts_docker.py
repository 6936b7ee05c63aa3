"""Many attempts end to end in Docker on a bundled smoke task: run --attempts with
--evaluate, report's pass@k, select by visible tests, teach --pairs/--verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerve.agents.policies.stochastic import solves
from swerve.cli import app
from swerve.harness.tasks import load_tasks

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SMOKE = str(Path(__file__).parents[2] / "examples" / "smoke.jsonl")
TASK = "pytoolz__toolz-0.12.1-m0006"


def _containers(client, run_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"swerve.run={run_id}"})


def test_two_attempts_graded_scored_selected_and_paired(docker_client, tmp_path):
    task = load_tasks(SMOKE, instance_ids=[TASK])[0]
    # seeds 5 and 6: the stochastic oracle draws the gold fix once and a wrong edit once
    assert [solves(task, 0.3, seed) for seed in (5, 6)] == [True, False]
    out = tmp_path / "many"
    runner = CliRunner()
    ran = runner.invoke(app, ["run", "--tasks", SMOKE, "--instance-ids", TASK, "--policy", "oracle-stochastic:p=0.3",
                              "--attempts", "2", "--seed", "5", "--evaluate", "--backend", "docker", "--no-progress",
                              "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    assert "resolved 1 of 2" in ran.output
    record = json.loads((out / "run.json").read_text())
    assert record["kind"] == "attempts" and record["tasks"]["source"] == SMOKE and record["tasks"]["count"] == 1

    scored = runner.invoke(app, ["report", str(out), "--format", "json", "--bootstrap-samples", "200"])
    assert scored.exit_code == 0, scored.output
    scores = json.loads(scored.stdout)
    assert scores["pass_at_k"] == {"1": 0.5, "2": 1.0} and scores["solves"] == {TASK: 1}

    picked = runner.invoke(app, ["select", str(out), "--tasks", SMOKE, "--strategy", "tests", "--backend", "docker"])
    assert picked.exit_code == 0, picked.output
    rows = [json.loads(line) for line in (out / "selections" / "tests.jsonl").read_text().splitlines()]
    assert [row["attempt"] for row in rows] == [1] and rows[0]["scores"]["tests"] == 0
    assert "toolz.merge_with(func, d" in rows[0]["model_patch"]
    again = json.loads(runner.invoke(app, ["report", str(out), "--format", "json", "--bootstrap-samples", "200"]).stdout)
    assert again["selected"] == {"tests": 1.0}

    taught = runner.invoke(app, ["teach", "--tasks", SMOKE, "--instance-ids", TASK, "--policy", "oracle-stochastic:p=0.3",
                                 "--attempts", "2", "--seed", "5", "--pairs", "--verifier", "--backend", "docker",
                                 "--no-progress", "--out", str(out)])
    assert taught.exit_code == 0, taught.output
    from datasets import load_dataset

    pairs = load_dataset("parquet", data_files=str(out / "teacher" / "pairs.parquet"))["train"]
    assert len(pairs) == 1 and pairs[0]["chosen_attempt"] == 1 and pairs[0]["rejected_attempt"] == 2
    verifier = load_dataset("parquet", data_files=str(out / "teacher" / "verifier.parquet"))["train"]
    assert sorted(verifier["resolved"]) == [False, True]
    assert _containers(docker_client, "many") == [] and _containers(docker_client, "select-many") == []
