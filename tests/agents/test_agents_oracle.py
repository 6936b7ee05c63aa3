"""The oracle teacher, its detours, replay of its trajectories, and the noop floor."""

from __future__ import annotations

import subprocess
import sys

import pytest
from agents_fake_env import calc_repo, calc_task, make_repo, scratch_env

from swerve.agents.loop import run_episode
from swerve.agents.policies.oracle import OraclePolicy, _hunk, _wrong_version
from swerve.agents.policies.replay import ReplayPolicy, load_replay_policy
from swerve.agents.policies.scripted import scripted_policy
from swerve.agents.trajectory import append_trajectory
from swerve.schema import Task


def _tests_pass(root, *tests) -> bool:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=root,
                          capture_output=True)
    return done.returncode == 0


def apply(root, patch: str) -> None:
    subprocess.run(["git", "apply", "-"], input=patch, text=True, cwd=root, check=True)


def test_oracle_reproduces_the_gold_patch_like_an_engineer(tmp_path):
    task = calc_task()
    env = scratch_env(calc_repo(tmp_path / "repo"))
    trajectory = run_episode(task, env, OraclePolicy(task))
    assert trajectory.exit_status == "submitted"
    assert trajectory.manifest["policy"]["oracle_made"] is True
    actions = [(s.action.name, s.action.arguments.get("command", "")[:20]) for s in trajectory.steps]
    assert actions[0] == ("str_replace_editor", "view")
    assert ("str_replace_editor", "str_replace") in actions and ("str_replace_editor", "create") in actions
    test_runs = [s for s in trajectory.steps if s.action.name == "bash" and "pytest" in s.action.arguments["command"]]
    assert len(test_runs) == 2
    assert test_runs[0].exit_code != 0 and "failed" in test_runs[0].observation
    assert test_runs[1].exit_code == 0 and "passed" in test_runs[1].observation
    assert "test_calc.py" not in trajectory.final_patch  # its temporary regression tests are taken out
    clean = calc_repo(tmp_path / "check")
    apply(clean, trajectory.final_patch)
    apply(clean, task.test_patch)
    assert _tests_pass(clean, "test_calc.py")
    assert (clean / "helpers.py").read_text() == "def double(x):\n    return 2 * x\n"


def test_oracle_with_detours_makes_and_reverts_a_wrong_edit(tmp_path):
    task = calc_task()
    env = scratch_env(calc_repo(tmp_path / "repo"))
    trajectory = run_episode(task, env, OraclePolicy(task, detours=True))
    commands = [s.action.arguments.get("command") for s in trajectory.steps if s.action.name == "str_replace_editor"]
    assert "undo_edit" in commands
    undo = commands.index("undo_edit")
    assert commands[undo - 1] == "str_replace"
    test_runs = [s for s in trajectory.steps if s.action.name == "bash" and "pytest" in s.action.arguments["command"]]
    assert len(test_runs) == 3 and test_runs[1].exit_code != 0
    assert trajectory.manifest["policy"]["detours"] is True
    clean = calc_repo(tmp_path / "check")
    apply(clean, trajectory.final_patch)
    apply(clean, task.test_patch)
    assert _tests_pass(clean, "test_calc.py")


def test_oracle_falls_back_to_git_apply_when_a_hunk_is_ambiguous(tmp_path):
    block = "p1\np2\np3\nX\nq1\nq2\nq3\n"
    source = block + block
    patch = (
        "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -8,7 +8,7 @@\n"
        " p1\n p2\n p3\n-X\n+Y\n q1\n q2\n q3\n"
    )
    task = Task(instance_id="fake__amb-1", repo="fake/amb", patch=patch, problem_statement="x")
    root = make_repo(tmp_path / "repo", {"m.py": source})
    env = scratch_env(root)
    trajectory = run_episode(task, env, OraclePolicy(task))
    assert trajectory.exit_status == "submitted"
    assert env.read_file("m.py") == block + block.replace("X", "Y")
    assert any("git apply" in (s.action.arguments.get("command") or "") for s in trajectory.steps if s.action.name == "bash")


def test_oracle_needs_a_gold_patch():
    with pytest.raises(ValueError, match="no gold patch"):
        OraclePolicy(Task(instance_id="a__b-1", repo="a/b"))


def test_hunk_honours_no_newline_at_end_of_file():
    from unidiff import PatchSet

    patch = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
    hunk = _hunk(list(PatchSet(patch)[0])[0])
    assert hunk.old == "a\nb" and hunk.new == "a\nc"


def test_wrong_version_differs_from_both_sides():
    from unidiff import PatchSet

    hunk = _hunk(list(PatchSet(calc_task().patch)[0])[0])
    wrong = _wrong_version(hunk)
    assert wrong not in (None, hunk.old, hunk.new)


def test_replay_reproduces_the_patch_in_a_fresh_environment(tmp_path):
    task = calc_task()
    original = run_episode(task, scratch_env(calc_repo(tmp_path / "one")), OraclePolicy(task, detours=True))
    path = tmp_path / "trajectories.jsonl"
    append_trajectory(path, original)
    replayed = run_episode(task, scratch_env(calc_repo(tmp_path / "two")), load_replay_policy(path, task.instance_id))
    assert replayed.final_patch == original.final_patch
    assert [s.action for s in replayed.steps] == [s.action for s in original.steps]
    assert [s.assistant for s in replayed.steps] == [s.assistant for s in original.steps]
    assert replayed.manifest["policy"]["replayed_policy"]["policy"] == "oracle"
    with pytest.raises(ValueError, match="no trajectory for"):
        load_replay_policy(path, "other__x-1")


def test_replay_reads_the_file_once_for_many_tasks_and_again_when_it_changes(tmp_path, monkeypatch):
    import swerve.agents.trajectory as trajectory_io

    reads = []
    read_trajectories = trajectory_io.read_trajectories
    monkeypatch.setattr(trajectory_io, "read_trajectories", lambda path: reads.append(path) or read_trajectories(path))
    task = calc_task()
    recorded = run_episode(task, scratch_env(calc_repo(tmp_path / "one")), OraclePolicy(task))
    path = tmp_path / "trajectories.jsonl"
    append_trajectory(path, recorded)
    for _ in range(3):
        assert load_replay_policy(path, task.instance_id).trajectory.instance_id == task.instance_id
    assert len(reads) == 1
    append_trajectory(path, recorded.model_copy(update={"instance_id": "other__x-2"}))
    assert load_replay_policy(path, "other__x-2").trajectory.instance_id == "other__x-2"
    assert len(reads) == 2


def test_replay_submits_when_the_recording_runs_out(tmp_path):
    task = calc_task()
    original = run_episode(task, scratch_env(calc_repo(tmp_path / "one")), OraclePolicy(task))
    original.steps = original.steps[:1]
    replayed = run_episode(task, scratch_env(calc_repo(tmp_path / "two")), ReplayPolicy(original))
    assert replayed.exit_status == "submitted" and len(replayed.steps) == 2


def test_scripted_policy_specs(tmp_path):
    task = calc_task()
    assert isinstance(scripted_policy("oracle", task), OraclePolicy)
    assert scripted_policy("oracle-detours", task).detours is True
    assert scripted_policy("noop", task).name == "noop"
    assert scripted_policy("openai:gpt-x", task) is None
    with pytest.raises(ValueError, match="replay:PATH"):
        scripted_policy("replay", task)


def test_wrong_version_prefers_a_near_miss_that_keeps_the_syntax():
    from swerve.agents.policies.oracle import _Hunk, _blocks_intact

    hunk = _Hunk(old="    for x in xs:\n        total += x\n",
                 new="    for x in xs:\n        if x is not None:\n            total += x\n",
                 source_start=1, source_length=2, text="")
    assert _wrong_version(hunk) == "    for x in xs:\n        if x is None:\n            total += x\n"
    assert not _blocks_intact(["    for x in xs:\n", "    return x\n"])
    assert _blocks_intact(["    for x in xs:\n", "        y = x\n"])
