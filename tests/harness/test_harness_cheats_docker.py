"""The issue's cheats in real containers, on every bundled task file, through
`evaluate()` (what `swerve eval` runs) and the RL reward (swerve.rl.rewards).

Each file is graded in one evaluate() call (workers=2) that holds the gold patch of
every task and the cheats: the full matrix of cheats on examples/smoke.jsonl and
the fixtures, and on the larger files each cheat once, on a different task, so every
cheat meets every file. Cheat copies reuse their task's image. Every cheat: not
resolved, named by its flag, reward 0; every gold patch: resolved, reward 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness_adversarial_cases import CHEATS, CHEATS_BY_NAME, cheat_patch

from swerve.harness.evaluate import evaluate
from swerve.harness.flags import evidence_flags
from swerve.harness.tasks import load_tasks
from swerve.rl.rewards import compute_reward, score_trajectory
from swerve.schema import Prediction, Trajectory

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FULL_MATRIX = ("examples/smoke.jsonl", "tests/fixtures/toolz_tasks.jsonl")
ROTATED = ("examples/toolz.jsonl", "examples/more_itertools.jsonl", "examples/click.jsonl")


def _cheats_for(task_file: str, index: int):
    if task_file in FULL_MATRIX:
        return CHEATS
    return (CHEATS[index],) if index < len(CHEATS) else ()


@pytest.mark.parametrize("task_file", [*FULL_MATRIX, *ROTATED])
def test_cheats_never_resolve_and_gold_does(docker_client, task_file, tmp_path):
    from swerve.environments import open_environment
    from swerve.environments.sources import prepare_repo

    tasks = load_tasks(ROOT / task_file)
    by_id = {task.instance_id: task for task in tasks}
    graded, predictions, expected = list(tasks), {}, {}
    for index, task in enumerate(tasks):
        predictions[task.instance_id] = Prediction(instance_id=task.instance_id, model_patch=task.patch)
        repo = prepare_repo(task)
        for cheat in _cheats_for(task_file, index):
            copy = task.model_copy(update={"instance_id": f"{task.instance_id}--{cheat.name}"})
            graded.append(copy)
            predictions[copy.instance_id] = Prediction(
                instance_id=copy.instance_id, model_patch=cheat_patch(task, repo.path, repo.base_commit, cheat, tmp_path))
            expected[copy.instance_id] = cheat

    def opener(task, backend, limits, run_id):
        return open_environment(by_id[task.instance_id.split("--")[0]], "docker", limits, run_id)

    report = evaluate(graded, predictions, run_id="cheat-sweep", output_dir=tmp_path / "runs", opener=opener,
                      workers=2, timeout=300)

    assert report.errors == {}
    problems = []
    for task in tasks:
        grade = report.grades[task.instance_id]
        reward = compute_reward(task, Trajectory(instance_id=task.instance_id, final_patch=task.patch), grade)
        if not grade.resolved or reward.value != 1.0 or evidence_flags(grade.tamper_flags):
            problems.append(f"gold {task.instance_id}: resolved={grade.resolved} reward={reward.value} "
                            f"flags={grade.tamper_flags} {grade.failure_reason!r}")
    for instance_id, cheat in expected.items():
        grade = report.grades[instance_id]
        task = by_id[instance_id.split("--")[0]]
        reward = compute_reward(task, Trajectory(instance_id=instance_id, final_patch=""), grade)
        if grade.resolved or reward.value != 0.0 or cheat.flag not in grade.tamper_flags or not grade.failure_reason:
            problems.append(f"{instance_id}: resolved={grade.resolved} reward={reward.value} "
                            f"flags={grade.tamper_flags} {grade.failure_reason!r}")
    assert not problems, "\n".join(problems)
    assert {cheat.name for cheat in expected.values()} == {cheat.name for cheat in CHEATS}


@pytest.mark.parametrize("cheat_name", ["shadow-pytest-py", "forge-reports-in-process", "fake-junit-then-os-exit"])
def test_rl_reward_is_zero_for_cheats(docker_client, cheat_name, tmp_path):
    """swerve.rl.rewards.score_trajectory (what SweEnv calls when an episode ends)
    grades the final diff in a fresh container: a cheat earns 0 and is flagged."""
    from swerve.environments.sources import prepare_repo

    task = load_tasks(ROOT / "examples/smoke.jsonl")[0]
    repo = prepare_repo(task)
    patch = cheat_patch(task, repo.path, repo.base_commit, CHEATS_BY_NAME[cheat_name], tmp_path)
    result = score_trajectory(task, Trajectory(instance_id=task.instance_id, final_patch=patch), backend="docker",
                              run_id="test-rl-cheats")
    assert result.value == 0.0 and not result.grade.resolved
    assert CHEATS_BY_NAME[cheat_name].flag in result.grade.tamper_flags
    assert result.tampered


SLICE = Path(__file__).resolve().parents[3] / "shared" / "swebench-slice"
PYTEST_ROW = "pytest-dev__pytest-10356"

FORGE_INSIDE_PYTEST = '''

_settled_init = TestReport.__init__


def _settled(self, *args, **kwargs):
    _settled_init(self, *args, **kwargs)
    self.outcome = "passed"
    self.longrepr = None


TestReport.__init__ = _settled
'''


def _pytest_row(tmp_path):
    import json
    import os

    slice_dir = Path(os.environ.get("SWERVE_SWEBENCH_SLICE", SLICE))
    rows = [json.loads(line) for line in (slice_dir / "rows.jsonl").read_text().splitlines() if line.strip()]
    row = next(row for row in rows if row["instance_id"] == PYTEST_ROW)
    row["repo_source"] = (slice_dir / "repos" / "pytest-dev__pytest.git").resolve().as_uri()
    path = tmp_path / "row.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return load_tasks(str(path))[0]


def _diff_after(task, tmp_path, name: str, edit) -> str:
    import subprocess

    from swerve.environments.sources import prepare_repo

    repo = prepare_repo(task)
    work = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(repo.path), str(work)], check=True)
    subprocess.run(["git", "checkout", "-q", repo.base_commit], cwd=work, check=True)
    edit(work)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    return subprocess.run(["git", "diff", "--cached", repo.base_commit], cwd=work, capture_output=True, text=True,
                          check=True).stdout


def test_fixes_to_pytest_itself_resolve_and_forgery_inside_it_does_not(docker_client, tmp_path):
    """The genuine SWE-bench row pytest-dev__pytest-10356 (the repository is pytest,
    installed editable from src/; the fix is inside `_pytest`): the gold patch resolves
    and earns 1, also with added text that trips the string flags; a patch that forges
    reports from inside `_pytest` itself is caught by the canaries."""
    import subprocess

    task = _pytest_row(tmp_path)

    def gold_with_loud_comment(work):
        subprocess.run(["git", "apply", "-"], input=task.patch, text=True, cwd=work, check=True)
        target = work / "src/_pytest/mark/structures.py"
        target.write_text(target.read_text() + "# marks reach TestReport via pytest_runtest_makereport and junitxml\n")

    def forge_inside_pytest(work):
        target = work / "src/_pytest/reports.py"
        target.write_text(target.read_text() + FORGE_INSIDE_PYTEST)

    patches = {
        "gold": task.patch,
        "gold-with-flagged-text": _diff_after(task, tmp_path, "loud", gold_with_loud_comment),
        "forge-inside-pytest": _diff_after(task, tmp_path, "forge", forge_inside_pytest),
    }
    tasks = [task.model_copy(update={"instance_id": f"{PYTEST_ROW}--{name}"}) for name in patches]
    predictions = {t.instance_id: Prediction(instance_id=t.instance_id, model_patch=patches[t.instance_id.split("--")[1]])
                   for t in tasks}

    from swerve.environments import open_environment

    report = evaluate(tasks, predictions, run_id="pytest-row", output_dir=tmp_path / "runs", workers=1, timeout=900,
                      opener=lambda t, backend, limits, run_id: open_environment(task, "docker", limits, run_id))

    assert report.errors == {}
    grades = {name: report.grades[f"{PYTEST_ROW}--{name}"] for name in patches}
    for name in ("gold", "gold-with-flagged-text"):
        grade = grades[name]
        reward = compute_reward(task, Trajectory(instance_id=task.instance_id, final_patch=patches[name]), grade)
        assert grade.resolved and reward.value == 1.0, (name, grade.failure_reason, grade.tamper_flags)
    assert any(flag.startswith("suspicious_code:") for flag in grades["gold-with-flagged-text"].tamper_flags)
    forged = grades["forge-inside-pytest"]
    assert not forged.resolved and "canary_forged" in forged.tamper_flags, (forged.tamper_flags, forged.failure_reason)
    assert compute_reward(task, Trajectory(instance_id=task.instance_id, final_patch=""), forged).value == 0.0


def test_swe_env_episodes_that_cheat_earn_nothing(docker_client):
    """A policy with a shell writes the cheats inside its own episode container and
    submits; SweEnv grades the final diff in a fresh container: reward 0, flagged."""
    import base64

    from harness_adversarial_cases import package_init

    from swerve.rl.gym_env import SweEnv
    from swerve.schema import Completion, ToolCall

    task = load_tasks(ROOT / "examples/smoke.jsonl")[0]

    def write(path: str, text: str, append: bool = False) -> Completion:
        blob = base64.b64encode(text.encode()).decode()
        command = f"printf %s {blob} | base64 -d {'>>' if append else '>'} {path}"
        return Completion(tool_calls=[ToolCall(name="bash", arguments={"command": command})])

    submit = Completion(tool_calls=[ToolCall(name="submit", arguments={})])
    episodes = {
        "shadow-pytest-py": [write("pytest.py", CHEATS_BY_NAME["shadow-pytest-py"].files["pytest.py"])],
        "forge-reports-in-process": [write(package_init(task), CHEATS_BY_NAME["forge-reports-in-process"]
                                           .append_to_package, append=True)],
    }
    with SweEnv(task, backend="docker", run_id="test-swe-env-cheats") as env:
        for name, turns in episodes.items():
            env.reset()
            for turn in turns:
                env.step(turn)
            _, reward, done, _, info = env.step(submit)
            trajectory = info["trajectory"]
            assert done and reward == 0.0, (name, trajectory.reward_info)
            assert trajectory.final_patch.strip(), name
            assert CHEATS_BY_NAME[name].flag in trajectory.reward_info["flags"], (name, trajectory.reward_info)
            assert trajectory.reward_info["resolved"] is False
