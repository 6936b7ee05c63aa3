"""Interrupting real runs: `swerve eval` (gold predictions on the toolz fixture, docker
backend) and `swerve run --policy oracle` are stopped with SIGINT / SIGTERM at moments
picked by watching the run (seeded random delays after the first container starts, and
once in the middle of a slow instance's test run). Each must exit with 130 / 143 within
10 s, leave no container of its run, save nothing for the work in flight, and resume to
the same verdicts as an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swerve.environments.docker import LABEL_RUN

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "toolz_tasks.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
IDS = [row["instance_id"] for row in ROWS]
STOP_WITHIN_S = 10.0
SLEEP_HUNK = (
    "diff --git a/toolz/__init__.py b/toolz/__init__.py\n--- a/toolz/__init__.py\n+++ b/toolz/__init__.py\n"
    "@@ -1,3 +1,5 @@\n+import time as _slow\n+_slow.sleep({seconds})\n from .itertoolz import *\n \n"
    " from .functoolz import *\n"
)

pytestmark = pytest.mark.docker


def swerve(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "swerve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def eval_args(output: Path, run_id: str, predictions: str) -> list[str]:
    return ["eval", "--tasks", str(FIXTURE), "--predictions", predictions, "--run-id", run_id, "--output", str(output),
            "--backend", "docker", "--timeout", "300", "--no-progress"]


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def containers_of(client, run_id: str) -> list:
    """Sparse: no inspect per container, which races with a removal under way."""
    return client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_RUN}={run_id}"})


def running_python(client, run_id: str) -> bool:
    """Whether a Python process (the hidden tests' runner) runs in a container of the run."""
    for container in containers_of(client, run_id):
        try:
            processes = container.top().get("Processes") or []
        except Exception:  # the container is being removed
            continue
        if any("python" in " ".join(row) for row in processes):
            return True
    return False


def wait_for(condition, process: subprocess.Popen, what: str, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}: {process.communicate()[0][-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def interrupt(process: subprocess.Popen, signum: int) -> tuple[int, float, str]:
    """Send `signum`; the exit code, the seconds it took to exit, and the output."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"{signal.Signals(signum).name}: the run was still alive 60 s later")
    return process.returncode, time.monotonic() - sent, out


def verdicts(run_dir: Path) -> dict[str, tuple[bool, str]]:
    """Per instance with a saved grade: (resolved, failure class)."""
    found = {}
    for report in sorted((run_dir / "instances").glob("*/report.json")):
        instance_id = report.parent.name
        grade = json.loads(report.read_text())[instance_id]
        found[instance_id] = (grade["resolved"], grade["failure_class"])
    return found


def check_stopped(client, run_id: str, signum: int, code: int, took: float, out: str) -> None:
    print(f"{run_id}: {signal.Signals(signum).name} -> exit {code} in {took:.2f} s")
    if os.environ.get("SWERVE_DEBUG_STOP"):
        print(out)
    assert code == 128 + signum, out[-2000:]
    assert took < STOP_WITHIN_S, f"{signal.Signals(signum).name} took {took:.1f} s to stop the run"
    assert "Traceback" not in out and "interrupted" in out, out[-2000:]
    assert containers_of(client, run_id) == [], f"{run_id}: containers left after {signal.Signals(signum).name}"


def slowed_gold(path: Path, seconds: dict[str, int]) -> Path:
    """Gold predictions; the instances named in `seconds` also sleep that long when
    their tests import toolz (still resolved: same verdicts, a longer window)."""
    with path.open("w") as handle:
        for row in ROWS:
            extra = SLEEP_HUNK.format(seconds=seconds[row["instance_id"]]) if row["instance_id"] in seconds else ""
            handle.write(json.dumps({"instance_id": row["instance_id"], "model_name_or_path": "gold-slowed",
                                     "model_patch": row["patch"] + extra}) + "\n")
    return path


@pytest.fixture(scope="module")
def predictions(tmp_path_factory) -> Path:
    """Gold, the last instance slowed by 3 s so that no moment picked below is after the end."""
    return slowed_gold(tmp_path_factory.mktemp("predictions") / "gold.jsonl", {IDS[-1]: 3})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, docker_client, predictions):
    """An uninterrupted run: every verdict the interrupted runs must reach."""
    output = tmp_path_factory.mktemp("reference")
    code, out = finish(swerve(*eval_args(output, "reference", str(predictions))))
    assert code == 0, out[-3000:]
    found = verdicts(output / "reference")
    assert found == {instance_id: (True, "none") for instance_id in IDS}, out[-3000:]
    return found


@pytest.mark.parametrize(("signum", "seed"), [(signal.SIGINT, 1), (signal.SIGTERM, 2), (signal.SIGINT, 3)])
def test_eval_interrupted_at_a_random_moment_resumes_to_the_uninterrupted_verdicts(docker_client, reference,
                                                                                  predictions, tmp_path, signum,
                                                                                  seed):
    """The moment: after a random number of graded instances (0-2), a random 0-0.8 s
    more (container start, patch, tests, or between instances)."""
    run_id = f"pytest-interrupt-{seed}"
    chooser = random.Random(seed)
    graded_first, delay = chooser.randrange(len(IDS)), chooser.uniform(0.0, 0.8)
    process = swerve(*eval_args(tmp_path, run_id, str(predictions)))
    wait_for(lambda: containers_of(docker_client, run_id), process, "the first container started")
    wait_for(lambda: len(verdicts(tmp_path / run_id)) >= graded_first, process, f"{graded_first} graded instance(s)")
    time.sleep(delay)
    assert process.poll() is None, "the run ended before the moment picked"
    code, took, out = interrupt(process, signum)
    check_stopped(docker_client, run_id, signum, code, took, out)
    partial = verdicts(tmp_path / run_id)
    assert len(partial) < len(IDS) and all(partial[i] == reference[i] for i in partial)
    summary = json.loads((tmp_path / run_id / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["error_ids"] == []

    code, out = finish(swerve(*eval_args(tmp_path, run_id, str(predictions))))
    assert code == 0, out[-3000:]
    assert verdicts(tmp_path / run_id) == reference
    assert f"reused {len(partial)})" in out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_eval_stopped_in_the_middle_of_a_slow_test_run(docker_client, reference, tmp_path, signum):
    """The case of the issue: the in-flight instance was saved as test_error and reused
    (SIGTERM), and Ctrl-C waited for the test timeout (300 s here)."""
    run_id = f"pytest-interrupt-mid-test-{signal.Signals(signum).name.lower()}"
    victim = IDS[1]
    predictions = slowed_gold(tmp_path / "slow.jsonl", {victim: 10})
    process = swerve(*eval_args(tmp_path, run_id, str(predictions)))
    started = tmp_path / run_id / "instances" / victim / "base_files.json"
    wait_for(started.exists, process, f"{victim}'s environment started")
    wait_for(lambda: running_python(docker_client, run_id), process, f"{victim}'s hidden tests running")
    assert process.poll() is None  # the tests sleep 10 s on import: the run is inside them
    code, took, out = interrupt(process, signum)
    check_stopped(docker_client, run_id, signum, code, took, out)
    folder = tmp_path / run_id / "instances" / victim
    assert not (folder / "report.json").exists() and not (folder / "error.json").exists()

    code, out = finish(swerve(*eval_args(tmp_path, run_id, str(predictions))))
    assert code == 0, out[-3000:]
    assert verdicts(tmp_path / run_id) == reference


def test_run_oracle_interrupted_resumes_to_every_task_once_and_resolved(docker_client, reference, tmp_path):
    """`swerve run`: SIGTERM during an episode; the resumed run finishes each task once,
    and graded (--evaluate) resolves what an uninterrupted oracle run resolves (all)."""
    out_dir = tmp_path / "oracle"
    ids = ",".join(IDS[:2])
    args = ["run", "--tasks", str(FIXTURE), "--policy", "oracle", "--out", str(out_dir), "--backend", "docker",
            "--instance-ids", ids, "--no-progress"]
    process = swerve(*args)
    run_id = out_dir.name
    wait_for(lambda: containers_of(docker_client, run_id), process, "the first episode's container started")
    time.sleep(random.Random(3).uniform(0.5, 2.0))
    assert process.poll() is None
    code, took, out = interrupt(process, signal.SIGTERM)
    check_stopped(docker_client, run_id, signal.SIGTERM, code, took, out)
    trajectories = out_dir / "trajectories.jsonl"
    before = trajectories.read_text().splitlines() if trajectories.exists() else []
    assert len(before) < 2

    code, out = finish(swerve(*args, "--evaluate"))
    assert code == 0, out[-3000:]
    rows = [json.loads(line) for line in trajectories.read_text().splitlines() if line.strip()]
    assert sorted(row["instance_id"] for row in rows) == sorted(IDS[:2])
    assert all(row["exit_status"] == "submitted" for row in rows)
    assert {i: v for i, v in verdicts(out_dir).items()} == {i: reference[i] for i in IDS[:2]}
    assert containers_of(docker_client, run_id) == []


def test_train_rl_interrupted_during_rollouts_stops_in_time_and_leaves_no_container(docker_client, tmp_path):
    """`swerve train rl` (the tiny model) stopped by SIGTERM while rollouts run."""
    out_dir = tmp_path / "rl-interrupt"
    process = swerve("train", "rl", "--model", "tiny", "--tasks", str(FIXTURE), "--out", str(out_dir),
                     "--group-size", "2", "--steps", "2", "--max-steps", "3", "--max-new-tokens", "16",
                     "--backend", "docker", "--workers", "2")
    wait_for(lambda: containers_of(docker_client, out_dir.name), process, "the first rollout's container started")
    time.sleep(random.Random(4).uniform(0.2, 1.5))
    assert process.poll() is None
    code, took, out = interrupt(process, signal.SIGTERM)
    check_stopped(docker_client, out_dir.name, signal.SIGTERM, code, took, out)
