"""End to end in Docker on the real toolz fixture tasks: the oracle resolves them,
a do-nothing policy resolves none, and a killed batch resumes without redoing
finished tasks or leaking containers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from swerve.agents.batch import run_batch
from swerve.agents.policies.noop import NoopPolicy
from swerve.agents.policies.oracle import OraclePolicy
from swerve.agents.trajectory import read_trajectories

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FIXTURE = Path(__file__).parents[1] / "fixtures" / "toolz_tasks.jsonl"


@pytest.fixture(scope="module")
def toolz_tasks():
    from swerve.harness.tasks import load_tasks

    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} is missing")
    return load_tasks(FIXTURE)


def _containers(client, run_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"swerve.run={run_id}"})


def test_oracle_resolves_every_task_and_noop_none(docker_client, toolz_tasks, tmp_path):
    tag = uuid.uuid4().hex[:8]  # run ids are directory names; keep them unique on a shared daemon
    oracle_dir, noop_dir = tmp_path / f"oracle-{tag}", tmp_path / f"noop-{tag}"
    oracle = run_batch(toolz_tasks, lambda t: OraclePolicy(t, detours=True), out_dir=oracle_dir,
                       backend="docker", evaluate=True, progress=False)
    assert sorted(oracle.resolved) == sorted(t.instance_id for t in toolz_tasks)
    for trajectory in read_trajectories(oracle_dir / "trajectories.jsonl"):
        assert trajectory.grade.resolved and trajectory.report_path
        assert (oracle_dir / trajectory.report_path).exists()
        assert trajectory.manifest["environment"]["image_digest"].startswith("sha256:")
        assert any(s.action.arguments.get("command") == "undo_edit" for s in trajectory.steps)
        assert not trajectory.grade.tamper_flags
    noop = run_batch(toolz_tasks, lambda t: NoopPolicy(), out_dir=noop_dir, backend="docker",
                     evaluate=True, progress=False)
    assert noop.resolved == []
    assert _containers(docker_client, oracle_dir.name) == [] and _containers(docker_client, noop_dir.name) == []


RUNNER = """
import os, sys, threading
import swerve.cli.run
from swerve.agents.policies.oracle import OraclePolicy
from swerve.cli import app

if os.environ.get("HOLD_AFTER_FIRST_TASK") == "1":
    # Every task after the first to act waits, its container open, until the process
    # is killed: the batch dies with exactly one task finished and one container left.
    first, oracle_act = [], OraclePolicy.act

    def held_act(self, messages, tools):
        first[:] = first or [self.task.instance_id]
        if self.task.instance_id != first[0]:
            threading.Event().wait()
        return oracle_act(self, messages, tools)

    OraclePolicy.act = held_act

sys.argv = ["swerve", "run", "--tasks", {tasks!r}, "--policy", "oracle", "--out", {out!r},
            "--backend", "docker", "--no-progress"]
app()
"""


def test_killed_batch_resumes_without_redoing_or_leaking(docker_client, toolz_tasks, tmp_path):
    out = tmp_path / f"killed-run-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(tasks=str(FIXTURE), out=str(out)))
    trajectories = out / "trajectories.jsonl"
    held = {**os.environ, "HOLD_AFTER_FIRST_TASK": "1"}
    process = subprocess.Popen([sys.executable, str(script)], start_new_session=True, env=held)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if trajectories.exists() and read_trajectories(trajectories):
                break
            time.sleep(0.2)
        if process.poll() is not None:
            pytest.fail(f"the held batch exited (code {process.returncode}) before it could be killed")
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    before = {t.instance_id: t.manifest["created_at"] for t in read_trajectories(trajectories)}
    assert 1 <= len(before) < len(toolz_tasks)
    assert len(before) == 1  # the hold let exactly the first task finish
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    after = {t.instance_id: t.manifest["created_at"] for t in read_trajectories(trajectories)}
    assert sorted(after) == sorted(t.instance_id for t in toolz_tasks)
    assert all(after[iid] == created for iid, created in before.items())
    assert f"skipped {len(before)} already finished" in done.stderr.replace("\n", " ")
    assert _containers(docker_client, out.name) == []
