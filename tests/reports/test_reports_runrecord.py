"""The run record (swerve.runrecord): the model, old run.json shapes, and report finding the tasks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from swerve.reports.scan import scan_run
from swerve.runrecord import (
    RECORD_VERSION,
    RunRecord,
    RunRecordError,
    parse_run_record,
    read_run_record,
    resolve_tasks_file,
    tasks_hash,
    tasks_source,
    write_run_record,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
SMOKE = Path(__file__).parents[2] / "examples" / "smoke.jsonl"


def test_record_round_trips_with_its_version(tmp_path):
    record = RunRecord(run_id="r1", kind="eval", tasks=tasks_source(str(SMOKE), [{"instance_id": "b"}, {"instance_id": "a"}]),
                       settings={"backend": "docker", "workers": 2})
    write_run_record(tmp_path, record)
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["record_version"] == RECORD_VERSION and data["kind"] == "eval"
    assert data["tasks"]["source_abs"] == str(SMOKE.resolve()) and data["tasks"]["count"] == 2
    assert read_run_record(tmp_path) == record


def test_tasks_hash_ignores_order_and_sees_content():
    rows = [{"instance_id": "a", "patch": "x"}, {"instance_id": "b", "patch": "y"}]
    assert tasks_hash(rows) == tasks_hash(list(reversed(rows)))
    assert tasks_hash(rows) != tasks_hash([{"instance_id": "a", "patch": "z"}, rows[1]])


def test_old_batch_shape_maps_kind_policy_and_model():
    old = {"run_id": "demo", "kind": "agent", "swerve_version": "0.1", "created_at": "2026-01-01T00:00:00+00:00",
           "resumed_at": None, "settings": {"backend": "docker", "workers": 2, "model_name": None, "policy": "oracle"}}
    record = parse_run_record(old)
    assert record.kind == "run" and record.policy == "oracle" and record.model_name is None
    assert record.record_version == 0 and record.settings["backend"] == "docker"


def test_old_eval_shape_and_tasks_key_map():
    old = {"run_id": "gold", "kind": "eval", "settings": {"eval": {"workers": 1}, "tasks_file": "t.jsonl",
                                                           "model_name_or_path": "gpt"}}
    record = parse_run_record(old)
    assert record.kind == "eval" and record.tasks.source == "t.jsonl" and record.model_name == "gpt"


@pytest.mark.parametrize("data, fragment", [
    ([], "expected a JSON object"),
    ({"run_id": "x", "kind": "bogus", "record_version": 1}, "kind"),
    ({"run_id": "x", "kind": "run", "record_version": RECORD_VERSION + 1}, "upgrade swerve"),
])
def test_bad_records_name_the_file_and_the_fault(data, fragment):
    with pytest.raises(RunRecordError, match=fragment) as caught:
        parse_run_record(data, "RUN/run.json")
    assert "RUN/run.json" in str(caught.value)


def test_unreadable_json_names_the_file(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunRecordError, match=r"run\.json: not valid JSON"):
        read_run_record(tmp_path)


def test_moved_task_file_says_pass_tasks(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    shutil.copy(SMOKE, tasks)
    record = RunRecord(run_id="r", kind="eval", tasks=tasks_source(str(tasks)))
    assert resolve_tasks_file(record, tmp_path) == tasks
    tasks.unlink()
    with pytest.raises(RunRecordError, match="pass --tasks"):
        resolve_tasks_file(record, tmp_path)
    dataset = RunRecord(run_id="r", kind="eval", tasks={"source": "princeton-nlp/SWE-bench_Lite:test"})
    assert resolve_tasks_file(dataset, tmp_path) is None


def test_report_reads_tasks_relative_to_the_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "instances").mkdir(parents=True)
    shutil.copy(SMOKE, run / "tasks.jsonl")
    write_run_record(run, RunRecord(run_id="r", kind="eval", tasks={"source": "tasks.jsonl"}))
    first = json.loads(SMOKE.read_text().splitlines()[0])
    (run / "predictions.jsonl").write_text(json.dumps({"instance_id": first["instance_id"], "model_name_or_path": "m",
                                                       "model_patch": first["patch"]}) + "\n")
    scan = scan_run(run)
    assert [row.repo for row in scan.rows] == ["pytoolz/toolz"]
    assert not any("have no gold patch" in str(p) for p in scan.problems)
    (run / "tasks.jsonl").unlink()
    moved = scan_run(run)
    assert any("pass --tasks" in str(p) for p in moved.problems)


def test_training_writes_a_train_record(tmp_path):
    from swerve.rl.trainer import save_run_config

    save_run_config(tmp_path, model="tiny", tasks=str(SMOKE), grpo={"steps": 2})
    record = read_run_record(tmp_path)
    assert record.kind == "train" and record.model_name == "tiny" and record.tasks.source == str(SMOKE)
    assert record.settings["grpo"] == {"steps": 2}
    assert json.loads((tmp_path / "run_config.json").read_text())["model"] == "tiny"
