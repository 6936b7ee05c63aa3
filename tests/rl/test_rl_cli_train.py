"""`swerve train rft` / `swerve train rl`: complete help, clear errors, and a real RFT run."""

from __future__ import annotations

import json
import re

import pytest
from rl_fixtures import MESSAGES
from typer.testing import CliRunner

from swerve.cli import app
from swerve.schema import Grade, Trajectory

runner = CliRunner()


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _options(help_text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z-]*", _plain(help_text)))


@pytest.mark.parametrize("command, expected", [
    ("rft", {"--model", "--teacher", "--out", "--lora-rank", "--lr", "--epochs", "--max-length"}),
    ("rl", {"--model", "--tasks", "--out", "--group-size", "--steps", "--lora-rank", "--lr", "--kl-coef",
            "--token-budget", "--backend", "--workers"}),
])
def test_help_lists_every_option(command, expected):
    result = runner.invoke(app, ["train", command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert expected <= _options(result.output)
    assert "Example: swerve train " + command in _plain(result.output).replace("\n", " ")


def test_train_lists_both_commands():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and " rft " in result.output and " rl " in result.output


def test_bad_inputs_are_one_line_errors(tmp_path):
    missing = runner.invoke(app, ["train", "rft", "--model", "tiny", "--teacher", str(tmp_path / "nope"),
                                  "--out", str(tmp_path / "out")])
    assert missing.exit_code == 2 and "--teacher" in missing.output and "swerve teach" in missing.output
    backend = runner.invoke(app, ["train", "rl", "--model", "tiny", "--tasks", "x.jsonl", "--out", str(tmp_path),
                                  "--backend", "ssh"])
    assert backend.exit_code == 2 and "unknown backend 'ssh'" in backend.output
    tasks = runner.invoke(app, ["train", "rl", "--model", "tiny", "--tasks", str(tmp_path / "none.jsonl"),
                                "--out", str(tmp_path / "rl")])
    assert tasks.exit_code == 2 and "--tasks" in tasks.output


@pytest.mark.rl
def test_train_rft_runs_and_saves_adapter_and_configs(tmp_path):
    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.agents.trajectory import append_trajectory

    model_dir = make_tiny_qwen3(tmp_path / "tiny")
    teacher = tmp_path / "teacher.jsonl"
    for number, resolved in enumerate([True, False]):
        instance_id = f"hand__made-{number}"
        append_trajectory(teacher, Trajectory(instance_id=instance_id, messages=MESSAGES, tools=[],
                                              exit_status="submitted",
                                              grade=Grade(instance_id=instance_id, resolved=resolved)))
    out = tmp_path / "rft"
    result = runner.invoke(app, ["train", "rft", "--model", str(model_dir), "--teacher", str(teacher),
                                 "--out", str(out), "--lora-rank", "4", "--epochs", "1", "--max-length", "512"])
    assert result.exit_code == 0, result.output
    assert (out / "adapter" / "adapter_config.json").exists()
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["lora_alpha"] == 8
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["model"] == str(model_dir) and run_config["rft"]["max_length"] == 512
    assert run_config["command"] == "swerve train rft" and run_config["arguments"]["lora_rank"] == 4
    record = json.loads((out / "run.json").read_text())
    assert record["kind"] == "train" and record["model_name"] == str(model_dir) and record["record_version"] == 1
    rft_config = json.loads((out / "rft_config.json").read_text())
    assert rft_config["kept_resolved"] == ["hand__made-0"], "the unresolved trajectory is rejected"


@pytest.mark.rl
@pytest.mark.timeout(600)
def test_run_grpo_trains_on_rollout_manager_batches(tmp_path):
    """`swerve train rl` without the container: the rollout manager on in-memory
    environments, the tiny model acting, two GRPO steps, everything written."""
    from rl_fixtures import ScratchEnvironment

    from swerve.agents.loop import EpisodeLimits
    from swerve.agents.policies.tiny_model import make_tiny_qwen3
    from swerve.agents.trajectory import read_trajectories
    from swerve.rl.grpo_run import run_grpo
    from swerve.fileio import iter_jsonl
    from swerve.rl.trainer import GRPOConfig
    from swerve.schema import Task

    tasks = [Task(instance_id=f"scratch-{n}", repo="o/r", problem_statement="fix") for n in range(2)]
    out = tmp_path / "rl"
    history = run_grpo(
        str(make_tiny_qwen3(tmp_path / "tiny")), tasks, out, GRPOConfig(lora_rank=4, learning_rate=1e-3),
        steps=2, group_size=2, workers=2, episode_limits=EpisodeLimits(max_steps=2),
        policy_options={"device": "cpu", "max_new_tokens": 8}, grade=False,
        opener=lambda task, backend, limits, run_id: ScratchEnvironment(task),
    )
    assert [h["step"] for h in history] == [1, 2] and all(h["rollouts"] == 2 for h in history)
    lines = [record for _, record in iter_jsonl(out / "history.jsonl")]
    assert lines[-1]["conversion"]["converted"] == 4 and lines[-1]["conversion"]["retokenized"] == 0
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "config.json").exists()
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 4 and all(r["tokens"]["retokenized"] is False for r in rollouts)
    assert {r["manifest"]["policy"]["policy"] for r in rollouts} == {"hf-exact"}
    assert read_trajectories(out / "rollouts.jsonl")


@pytest.mark.rl
@pytest.mark.docker
@pytest.mark.timeout(900)
def test_train_rl_in_docker_grades_every_rollout(docker_client, tmp_path):
    """`swerve train rl` end to end: containers, the evaluator's grade as reward, one update."""
    from pathlib import Path

    tasks = Path(__file__).resolve().parents[1] / "fixtures" / "toolz_tasks.jsonl"
    out = tmp_path / "rl"
    result = runner.invoke(app, [
        "train", "rl", "--model", "tiny", "--tasks", str(tasks), "--out", str(out), "--backend", "docker",
        "--instance-ids", "pytoolz__toolz-frequencies-none", "--group-size", "2", "--steps", "1",
        "--max-steps", "2", "--max-new-tokens", "16", "--workers", "2", "--lora-rank", "4",
    ])
    assert result.exit_code == 0, result.output
    assert "step 1/1" in result.output
    rollouts = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2
    for rollout in rollouts:
        assert rollout["manifest"]["environment"]["backend"] == "docker"
        assert rollout["grade"] is not None and rollout["reward"] == 0.0, "random weights resolve nothing"
    assert json.loads((out / "config.json").read_text())["lora_rank"] == 4
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["rollouts"]["group_size"] == 2 and run_config["grpo"]["lora_rank"] == 4
