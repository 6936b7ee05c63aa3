"""run_attempts: N seeded attempts per task, one attempt folder each, resumable per attempt."""

from __future__ import annotations

import json

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.attempts import attempt_folder, reseeded, run_attempts
from swerve.agents.policies import make_policy
from swerve.agents.policies.stochastic import solves
from swerve.agents.trajectory import read_trajectories
from swerve.fileio import iter_jsonl


def _opener(tmp_path, opened):
    def open_env(task, backend, limits, run_id):
        opened.append(task.instance_id)
        return scratch_env(calc_repo(tmp_path / f"env{len(opened)}"), task.instance_id)
    return open_env


def _factory_for_seed(seed):
    return lambda task: make_policy("oracle-stochastic:p=0.5", task=task, seed=seed)


def test_attempts_are_seeded_keyed_and_resumed(tmp_path):
    tasks = [calc_task(f"fake__calc-{i}", with_tests=False) for i in range(2)]
    out = tmp_path / "many"
    opened: list = []
    result = run_attempts(tasks, _factory_for_seed, attempts=3, out_dir=out, base_seed=10, workers=2,
                          open_env=_opener(tmp_path, opened), progress=False, policy_spec="oracle-stochastic:p=0.5")
    assert sorted(result.ran) == sorted(f"fake__calc-{i}#a{k}" for i in range(2) for k in (1, 2, 3))
    top = json.loads((out / "run.json").read_text())
    assert top["kind"] == "attempts" and top["attempts"] == 3 and top["seeds"] == [10, 11, 12]
    for k in (1, 2, 3):
        folder = attempt_folder(out, "many", k)
        manifest = json.loads((folder / "run.json").read_text())
        assert manifest["attempt"] == k and manifest["seed"] == 9 + k
        trajectories = {t.instance_id: t for t in read_trajectories(folder / "trajectories.jsonl")}
        predictions = {r["instance_id"]: r["model_patch"] for _, r in iter_jsonl(folder / "predictions.jsonl")}
        assert set(trajectories) == set(predictions) == {"fake__calc-0", "fake__calc-1"}
        for task in tasks:
            trajectory = trajectories[task.instance_id]
            assert trajectory.manifest["sample"] == k and trajectory.manifest["seed"] == 9 + k
            assert ("+    return a + b" in predictions[task.instance_id]
                    and "helpers.py" in predictions[task.instance_id]) == solves(task, 0.5, 9 + k)
    assert not (out / "trajectories.jsonl").exists(), "the single-attempt files stay out of a multi-attempt folder"

    # a rerun skips everything; raising N runs only the new attempt
    again = run_attempts(tasks, _factory_for_seed, attempts=4, out_dir=out, base_seed=10, open_env=_opener(tmp_path, opened),
                         progress=False, policy_spec="oracle-stochastic:p=0.5")
    assert sorted(again.ran) == ["fake__calc-0#a4", "fake__calc-1#a4"] and len(again.skipped) == 6
    assert len(opened) == 8
    with pytest.raises(ValueError, match="policy"):
        run_attempts(tasks, _factory_for_seed, attempts=2, out_dir=out, base_seed=10, open_env=_opener(tmp_path, opened),
                     progress=False, policy_spec="oracle")
    with pytest.raises(ValueError, match="--seed"):
        run_attempts(tasks, _factory_for_seed, attempts=2, out_dir=out, base_seed=0, open_env=_opener(tmp_path, opened),
                     progress=False, policy_spec="oracle-stochastic:p=0.5")


def test_reseeded_copies_a_shared_policy():
    class Sampler:
        seed = None
        _calls = 5

    shared = Sampler()
    copy = reseeded(shared, 3)
    assert copy is not shared and copy.seed == 3 and copy._calls == 0 and shared.seed is None
    plain = object()
    assert reseeded(plain, 3) is plain
