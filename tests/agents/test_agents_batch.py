"""run_batch: files written, resume, infra retries, kill-and-restart, grade linking, teach export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from agents_fake_env import calc_repo, calc_task, scratch_env

from swerve.agents.batch import infra_failures, link_grades, run_batch
from swerve.agents.policies.noop import NoopPolicy
from swerve.agents.policies.oracle import OraclePolicy
from swerve.agents.teach import export_teacher_data
from swerve.agents.trajectory import read_trajectories
from swerve.errors import InfraError
from swerve.fileio import atomic_write_json, iter_jsonl
from swerve.schema import Grade

HERE = Path(__file__).parent


def opener_for(tmp_path: Path, fail: dict[str, int] | None = None, opened: list | None = None):
    """An open_env that makes a fresh calc repo per call; `fail[id]` InfraErrors first."""
    fail = dict(fail or {})
    counter = {"n": 0}

    def open_env(task, backend, limits, run_id):
        if fail.get(task.instance_id, 0) > 0:
            fail[task.instance_id] -= 1
            raise InfraError(f"container for {task.instance_id} did not start")
        counter["n"] += 1
        env = scratch_env(calc_repo(tmp_path / f"env{counter['n']}"), task.instance_id)
        if opened is not None:
            opened.append(env)
        return env

    return open_env


def tasks(n: int = 3):
    return [calc_task(f"fake__calc-{i}", with_tests=False) for i in range(n)]


def test_batch_writes_trajectories_predictions_and_manifest(tmp_path):
    opened: list = []
    out = tmp_path / "run1"
    result = run_batch(tasks(3), lambda t: OraclePolicy(t), out_dir=out, workers=2,
                       open_env=opener_for(tmp_path, opened=opened), progress=False)
    assert sorted(result.ran) == ["fake__calc-0", "fake__calc-1", "fake__calc-2"]
    assert set(result.exit_statuses.values()) == {"submitted"}
    assert all(env.closed for env in opened)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["kind"] == "run" and manifest["run_id"] == "run1" and manifest["record_version"] == 1
    assert manifest["tasks"]["count"] == 3 and len(manifest["tasks"]["sha256"]) == 64
    assert manifest["created_at"] and manifest["ended_at"]
    predictions = [record for _, record in iter_jsonl(out / "predictions.jsonl")]
    assert {p["instance_id"] for p in predictions} == set(result.ran)
    assert all("+    return a + b" in p["model_patch"] and p["model_name_or_path"] == "oracle" for p in predictions)
    assert [t.manifest["run_id"] for t in read_trajectories(out / "trajectories.jsonl")] == ["run1"] * 3


def test_rerun_skips_finished_tasks(tmp_path):
    out = tmp_path / "run"
    run_batch(tasks(2), lambda t: OraclePolicy(t), out_dir=out, open_env=opener_for(tmp_path / "a"), progress=False)
    calls = []

    def factory(task):
        calls.append(task.instance_id)
        return NoopPolicy()

    again = run_batch(tasks(3), factory, out_dir=out, open_env=opener_for(tmp_path / "b"), progress=False)
    assert calls == ["fake__calc-2"]
    assert sorted(again.skipped) == ["fake__calc-0", "fake__calc-1"]
    assert len(read_trajectories(out / "trajectories.jsonl")) == 3
    predictions = {r["instance_id"]: r for _, r in iter_jsonl(out / "predictions.jsonl")}
    assert len(predictions) == 3 and predictions["fake__calc-2"]["model_patch"] == ""


def test_infra_failures_are_retried_and_never_written_as_finished(tmp_path):
    out = tmp_path / "run"
    flaky = opener_for(tmp_path / "a", fail={"fake__calc-0": 1, "fake__calc-1": 99})
    result = run_batch(tasks(2), lambda t: OraclePolicy(t), out_dir=out, open_env=flaky, max_infra_retries=2,
                       retry_delay_s=0, progress=False)
    assert result.ran == ["fake__calc-0"]
    assert "did not start" in result.infra_failures["fake__calc-1"]
    assert [t.instance_id for t in read_trajectories(out / "trajectories.jsonl")] == ["fake__calc-0"]
    assert [t.manifest["attempt"] for t in read_trajectories(out / "trajectories.jsonl")] == [2]
    assert list(infra_failures(out)) == ["fake__calc-1"]
    healed = run_batch(tasks(2), lambda t: OraclePolicy(t), out_dir=out, open_env=opener_for(tmp_path / "b"),
                       progress=False)
    assert healed.ran == ["fake__calc-1"] and infra_failures(out) == {}


def test_a_crashing_policy_is_reported_not_recorded(tmp_path):
    def factory(task):
        raise RuntimeError("bug in the policy")

    out = tmp_path / "run"
    result = run_batch(tasks(1), factory, out_dir=out, open_env=opener_for(tmp_path), progress=False)
    assert "RuntimeError: bug in the policy" in result.infra_failures["fake__calc-0"]
    assert read_trajectories(out / "trajectories.jsonl") == []


def test_duplicate_task_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="appears twice"):
        run_batch([calc_task(), calc_task()], NoopPolicy, out_dir=tmp_path, progress=False)


def test_link_grades_and_teacher_export(tmp_path):
    out = tmp_path / "run"
    run_batch(tasks(2), lambda t: OraclePolicy(t), out_dir=out, open_env=opener_for(tmp_path), progress=False)
    for iid, resolved in (("fake__calc-0", True), ("fake__calc-1", False)):
        atomic_write_json(out / "instances" / iid / "report.json",
                          {iid: Grade(instance_id=iid, resolved=resolved).model_dump(mode="json")})
    assert link_grades(out) == ["fake__calc-0"]
    graded = {t.instance_id: t for t in read_trajectories(out / "trajectories.jsonl")}
    assert graded["fake__calc-0"].grade.resolved and graded["fake__calc-0"].report_path == "instances/fake__calc-0/report.json"
    assert graded["fake__calc-1"].grade.resolved is False
    teach = export_teacher_data(out)
    assert teach.kept == ["fake__calc-0"] and teach.rows == 1 and teach.dataset_path.exists()


def test_evaluate_flag_calls_the_evaluator_and_links(tmp_path, monkeypatch):
    import swerve.harness.evaluate as evaluator

    seen = {}

    def fake_evaluate(task_list, predictions, *, run_id, output_dir, backend, workers, **options):
        seen.update(run_id=run_id, output_dir=output_dir, ids=sorted(predictions))
        for iid in predictions:
            atomic_write_json(Path(output_dir) / run_id / "instances" / iid / "report.json",
                              {iid: Grade(instance_id=iid, resolved=True).model_dump(mode="json")})

    monkeypatch.setattr(evaluator, "evaluate", fake_evaluate)
    out = tmp_path / "graded"
    result = run_batch(tasks(2), lambda t: OraclePolicy(t), out_dir=out, open_env=opener_for(tmp_path), evaluate=True,
                       progress=False)
    assert seen == {"run_id": "graded", "output_dir": tmp_path, "ids": ["fake__calc-0", "fake__calc-1"]}
    assert sorted(result.resolved) == ["fake__calc-0", "fake__calc-1"]


RUNNER = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    sys.path.insert(0, {here!r})
    from agents_fake_env import calc_repo, calc_task, scratch_env
    from swerve.agents.batch import run_batch
    from swerve.agents.policies.oracle import OraclePolicy

    root = Path({root!r})
    hold = os.environ.get("HOLD_AFTER_FIRST_TASK") == "1"
    first = []

    class Held(OraclePolicy):
        # With HOLD_AFTER_FIRST_TASK=1 every task after the first to act waits until
        # the process is killed, so the batch dies with exactly one task finished.
        def act(self, messages, tools):
            first[:] = first or [self.task.instance_id]
            if hold and self.task.instance_id != first[0]:
                threading.Event().wait()
            return super().act(messages, tools)

    def open_env(task, backend, limits, run_id):
        marker = root / "opened" / task.instance_id
        marker.parent.mkdir(parents=True, exist_ok=True)
        with open(marker, "a") as handle:
            handle.write("x")
        return scratch_env(calc_repo(root / "envs" / f"{{task.instance_id}}-{{time.time_ns()}}"), task.instance_id)

    tasks = [calc_task(f"fake__calc-{{i}}", with_tests=False) for i in range(4)]
    run_batch(tasks, lambda t: Held(t), out_dir=root / "run", workers=1, open_env=open_env, progress=False)
    """
)


def test_killed_batch_resumes_without_redoing_finished_tasks(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(here=str(HERE), root=str(tmp_path)))
    trajectories = tmp_path / "run" / "trajectories.jsonl"
    held = {**os.environ, "HOLD_AFTER_FIRST_TASK": "1"}
    process = subprocess.Popen([sys.executable, str(script)], start_new_session=True, env=held)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if trajectories.exists() and len(read_trajectories(trajectories)) >= 1:
                break
            if process.poll() is not None:
                pytest.fail("the held batch exited before it could be killed")
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    done_before = {t.instance_id: t.manifest["created_at"] for t in read_trajectories(trajectories)}
    assert 1 <= len(done_before) < 4
    assert sorted(done_before) == ["fake__calc-0"]  # the hold let exactly the first task finish
    assert subprocess.run([sys.executable, str(script)]).returncode == 0
    after = {t.instance_id: t.manifest["created_at"] for t in read_trajectories(trajectories)}
    assert sorted(after) == [f"fake__calc-{i}" for i in range(4)]
    assert all(after[iid] == created for iid, created in done_before.items())
    for iid in done_before:
        assert (tmp_path / "opened" / iid).read_text() == "x"  # never opened again
    assert not (tmp_path / "run" / ".swerve-run.lock").exists()


def test_resuming_with_another_policy_is_refused(tmp_path):
    out = tmp_path / "run"
    run_batch(tasks(1), NoopPolicy, out_dir=out, open_env=opener_for(tmp_path), progress=False, policy_spec="noop")
    with pytest.raises(ValueError, match="holds a run of policy 'noop'"):
        run_batch(tasks(1), OraclePolicy, out_dir=out, open_env=opener_for(tmp_path), progress=False,
                  policy_spec="oracle")


def test_batch_options_are_shared_and_checked(tmp_path):
    """run_batch and run_attempts take the same BatchOptions (an object and/or keywords);
    an unknown keyword is refused by name; without limits the agent configuration's apply."""
    from swerve.agents.attempts import run_attempts
    from swerve.agents.batch import BatchOptions
    from swerve.agents.config import resolve_agent_config

    with pytest.raises(TypeError, match="unknown batch option.*wrokers"):
        run_batch(tasks(1), lambda t: NoopPolicy(), out_dir=tmp_path / "x", wrokers=2)
    with pytest.raises(TypeError, match="unknown batch option.*wrokers"):
        run_attempts(tasks(1), lambda seed: (lambda t: NoopPolicy()), attempts=2, out_dir=tmp_path / "y", wrokers=2)
    agent = resolve_agent_config(None, max_steps=3)
    resolved = BatchOptions.of(BatchOptions(agent=agent, open_env=opener_for(tmp_path)), workers=2)
    assert resolved.workers == 2 and resolved.limits.max_steps == 3
    assert resolved.env_limits.exec_timeout_s == agent.limits.command_timeout_s
    options = BatchOptions(open_env=opener_for(tmp_path), progress=False, agent=agent)
    result = run_batch(tasks(1), lambda t: NoopPolicy(), out_dir=tmp_path / "run", options=options)
    (trajectory,) = read_trajectories(result.trajectories_path)
    assert trajectory.manifest["limits"]["max_steps"] == 3
