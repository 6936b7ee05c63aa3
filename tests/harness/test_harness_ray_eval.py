"""`evaluate(..., ray=...)`: instances graded as Ray tasks on a local Ray instance, in
real containers, written by the driver in the same layout as a run without Ray."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerve.errors import SwerveError
from swerve.harness.evaluate import evaluate
from swerve.harness.tasks import load_predictions

TOOLZ_TASKS = Path(__file__).resolve().parent.parent / "fixtures" / "toolz_tasks.jsonl"


def test_missing_ray_is_a_one_line_error_naming_the_extra(toolz_tasks, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    tasks = list(toolz_tasks.values())
    with pytest.raises(SwerveError, match=r"pip install 'swerve\[ray\]'"):
        evaluate(tasks, load_predictions("gold", tasks), run_id="no-ray", output_dir=tmp_path, ray="auto")
    assert not (tmp_path / "no-ray").exists(), "nothing is started or written before Ray is there"

    from swerve.cli import app

    result = CliRunner().invoke(app, ["eval", "--tasks", str(TOOLZ_TASKS), "--predictions", "gold", "--run-id", "x",
                                      "--output", str(tmp_path), "--ray", "auto", "--no-progress"])
    assert result.exit_code == 2
    assert "pip install 'swerve[ray]'" in result.output
    assert "Traceback" not in result.output


def test_unreachable_address_fails_fast_with_a_clear_error(toolz_tasks, tmp_path):
    pytest.importorskip("ray")
    from swerve.harness.ray_eval import RayUnavailable

    tasks = list(toolz_tasks.values())
    with pytest.raises(RayUnavailable, match=r"--ray 127\.0\.0\.1:1: no Ray cluster answers.*ray start --head"):
        evaluate(tasks, load_predictions("gold", tasks), run_id="bad-addr", output_dir=tmp_path, ray="127.0.0.1:1")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _layout(run_dir):
    """Per instance: file names, and report.json's keys (values differ run to run)."""
    out = {}
    for folder in sorted((run_dir / "instances").iterdir()):
        report = json.loads((folder / "report.json").read_text())[folder.name]
        out[folder.name] = (sorted(p.name for p in folder.iterdir()), sorted(report))
    return out


@pytest.mark.docker
@pytest.mark.slow
def test_gold_and_empty_graded_on_local_ray_like_a_plain_run(docker_client, local_ray, toolz_tasks, tmp_path):
    tasks = list(toolz_tasks.values())
    gold_preds = load_predictions("gold", tasks)
    gold = evaluate(tasks, gold_preds, run_id="ray-gold", output_dir=tmp_path, backend="docker", workers=2, ray="local")
    assert gold.errors == {}
    assert gold.summary["resolved_instances"] == 3, {i: g.failure_reason for i, g in gold.grades.items()}
    assert local_ray.is_initialized(), "a Ray connection the caller made is left to the caller"
    assert all(g.environment.get("ray_node") and g.environment.get("backend") == "docker" for g in gold.grades.values())

    empty = evaluate(tasks, load_predictions("empty", tasks), run_id="ray-empty", output_dir=tmp_path,
                     backend="docker", workers=2, ray="local")
    assert empty.errors == {}
    assert empty.summary["resolved_instances"] == 0 and empty.summary["empty_patch_instances"] == 3

    resumed = evaluate(tasks, gold_preds, run_id="ray-gold", output_dir=tmp_path, backend="docker", ray="local")
    assert sorted(resumed.skipped) == sorted(t.instance_id for t in tasks), "resume by patch hash works under Ray"

    one = tasks[0].instance_id
    plain = evaluate(tasks, gold_preds, run_id="plain-gold", output_dir=tmp_path, backend="docker", instance_ids=[one])
    assert plain.grades[one].resolved
    assert _layout(tmp_path / "ray-gold")[one] == _layout(tmp_path / "plain-gold")[one]
    assert gold.grades[one].tests_status == plain.grades[one].tests_status
    assert sorted(json.loads((tmp_path / "ray-gold" / "summary.json").read_text())) == sorted(plain.summary)

    for run_id in ("ray-gold", "ray-empty", "plain-gold"):
        assert not docker_client.containers.list(all=True, filters={"label": f"swerve.run={run_id}"}), run_id
