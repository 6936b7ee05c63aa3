"""DPO pairs and verifier rows from graded attempts; the pairs train one DPO step with the tiny model."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.attempts import run_attempts
from swerve.agents.policies import make_policy
from swerve.agents.policies.stochastic import solves
from swerve.agents.preferences import preference_pairs, verifier_rows, write_parquet
from swerve.agents.trajectory import read_trajectories, rewrite_trajectories
from swerve.schema import Grade

P = 0.5


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory):
    """Four calc tasks x 4 stochastic-oracle attempts, graded by the policy's own draw."""
    root = tmp_path_factory.mktemp("pairs")
    tasks = [calc_task(f"fake__calc-{i}", with_tests=False) for i in range(4)]
    count = {"n": 0}

    def open_env(task, *args):
        count["n"] += 1
        env = scratch_env(calc_repo(root / f"env{count['n']}"), task.instance_id)
        env.info = dataclasses.replace(env.info, workdir="/testbed")  # one prompt for every attempt, as in docker
        return env

    out = root / "run"
    run_attempts(tasks, lambda seed: (lambda task: make_policy(f"oracle-stochastic:p={P}", task=task, seed=seed)),
                 attempts=4, out_dir=out, open_env=open_env, progress=False)
    by_id = {t.instance_id: t for t in tasks}
    for folder in (out / "attempts").iterdir():
        seed = json.loads((folder / "run.json").read_text())["seed"]
        trajectories = read_trajectories(folder / "trajectories.jsonl")
        for trajectory in trajectories:
            resolved = solves(by_id[trajectory.instance_id], P, seed)
            trajectory.grade = Grade(instance_id=trajectory.instance_id, resolved=resolved)
        rewrite_trajectories(folder / "trajectories.jsonl", trajectories)
    return out, tasks


def test_pairs_pair_a_resolved_with_an_unresolved_attempt_of_the_same_prompt(graded_run):
    out, tasks = graded_run
    rows = preference_pairs(out, max_pairs_per_task=2)
    mixed = [t for t in tasks if 0 < sum(solves(t, P, s) for s in range(4)) < 4]
    assert mixed and {r["instance_id"] for r in rows} == {t.instance_id for t in mixed}
    for row in rows:
        task = next(t for t in tasks if t.instance_id == row["instance_id"])
        assert solves(task, P, row["chosen_attempt"] - 1) and not solves(task, P, row["rejected_attempt"] - 1)
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["chosen"][0]["role"] == "assistant" and row["chosen"][0]["tool_calls"]
        assert any(m["role"] == "tool" for m in row["chosen"]) and any(m["role"] == "tool" for m in row["rejected"])
        assert json.loads(row["tools"]) and json.loads(row["chosen"][0]["tool_calls"][0]["function"]["arguments"])
    assert max(sum(r["instance_id"] == t.instance_id for r in rows) for t in mixed) <= 2


def test_verifier_rows_cover_every_graded_attempt(graded_run, tmp_path):
    out, tasks = graded_run
    rows = verifier_rows(out)
    assert len(rows) == 16
    assert sum(r["resolved"] for r in rows) == sum(solves(t, P, s) for t in tasks for s in range(4))
    from datasets import load_dataset

    assert write_parquet(rows, tmp_path / "verifier.parquet") == 16
    loaded = load_dataset("parquet", data_files=str(tmp_path / "verifier.parquet"))["train"]
    assert set(loaded.column_names) >= {"messages", "tools", "final_patch", "resolved", "attempt"}


def test_pairs_train_one_dpo_step_with_the_tiny_model(graded_run, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    out, _ = graded_run
    path = tmp_path / "pairs.parquet"
    write_parquet(preference_pairs(out, max_pairs_per_task=1), path)
    dataset = load_dataset("parquet", data_files=str(path))["train"]
    model_dir = make_tiny_qwen3(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), per_device_train_batch_size=2, max_steps=1, use_cpu=True,
                     report_to=[], max_length=4096, logging_steps=1, save_strategy="no", learning_rate=1e-3)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    first = trainer.train_dataset[0]
    rendered = tokenizer.decode(first["chosen_ids"])
    assert "<tool_call>" in rendered and ("str_replace_editor" in rendered or "bash" in rendered)
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)
    assert any(not (p.detach() == before[name]).all() for name, p in model.named_parameters())
