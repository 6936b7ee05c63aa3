"""Bad input through the command line: each case is one clear line naming the file
(and line and field where there is one), a non-zero exit, and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerve.cli import app

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "toolz_tasks.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400", "NO_COLOR": "1"})


def error_line(result) -> str:
    """The single `error:` line of a failed command (and proof there is no traceback)."""
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture()
def latin1_tasks(tmp_path) -> Path:
    """A task file whose second row's problem statement is Latin-1, not UTF-8."""
    second = json.dumps({**ROWS[1], "problem_statement": "caf\u00e9 crashes"}, ensure_ascii=False)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + second.encode("latin-1") + b"\n")
    return path


def eval_args(tmp_path: Path, tasks: Path | str, predictions: str, *extra: str) -> list[str]:
    return ["eval", "--tasks", str(tasks), "--predictions", predictions, "--run-id", "bad",
            "--output", str(tmp_path / "runs"), "--backend", "local", "--no-progress", *extra]


def test_an_empty_task_file_is_an_error_everywhere(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for args in (eval_args(tmp_path, empty, "gold"),
                 ["run", "--tasks", str(empty), "--policy", "noop", "--out", str(tmp_path / "run")],
                 ["tasks", "validate", str(empty)]):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        line = error_line(result)
        assert str(empty) in line and "no tasks" in line
    assert not (tmp_path / "runs" / "bad").exists()


def test_an_empty_predictions_file_is_an_error(tmp_path):
    empty = tmp_path / "preds.jsonl"
    empty.write_text("\n")
    result = invoke(*eval_args(tmp_path, FIXTURE, str(empty)))
    assert result.exit_code == 2
    line = error_line(result)
    assert str(empty) in line and "no predictions" in line


def test_predictions_naming_only_unknown_instances_are_an_error(tmp_path):
    predictions = write_rows(tmp_path / "preds.jsonl", [{"instance_id": "nobody__nothing-1", "model_patch": ""}])
    result = invoke(*eval_args(tmp_path, FIXTURE, str(predictions)))
    assert result.exit_code == 2
    line = error_line(result)
    assert str(predictions) in line and "nobody__nothing-1" in line and str(FIXTURE) in line


def test_a_non_utf8_task_file_names_file_line_and_field(tmp_path, latin1_tasks):
    commands = [
        eval_args(tmp_path, latin1_tasks, "gold"),
        ["run", "--tasks", str(latin1_tasks), "--policy", "oracle", "--out", str(tmp_path / "run")],
        ["teach", "--tasks", str(latin1_tasks), "--policy", "oracle", "--out", str(tmp_path / "teach")],
        ["tasks", "validate", str(latin1_tasks)],
        ["tasks", "list", str(latin1_tasks)],
        ["train", "rl", "--model", "tiny", "--tasks", str(latin1_tasks), "--out", str(tmp_path / "rl")],
    ]
    for args in commands:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        line = error_line(result)
        assert f"{latin1_tasks}:2:" in line and "UTF-8" in line and "'problem_statement'" in line, (args, line)


def test_report_with_a_non_utf8_task_file(tmp_path, latin1_tasks):
    run_dir = tmp_path / "runs" / "bad"
    result = invoke(*eval_args(tmp_path, FIXTURE, "empty"))
    assert result.exit_code == 0, result.output
    result = invoke("report", str(run_dir), "--tasks", str(latin1_tasks))
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert f"{latin1_tasks}:2:" in line and "UTF-8" in line


def test_a_non_utf8_predictions_file(tmp_path):
    predictions = tmp_path / "preds.jsonl"
    row = {"instance_id": ROWS[0]["instance_id"], "model_patch": "d\u00e9j\u00e0"}
    predictions.write_bytes(json.dumps(row, ensure_ascii=False).encode("latin-1") + b"\n")
    result = invoke(*eval_args(tmp_path, FIXTURE, str(predictions)))
    assert result.exit_code == 2
    line = error_line(result)
    assert f"{predictions}:1:" in line and "'model_patch'" in line


@pytest.mark.parametrize(("field", "predictions"), [("FAIL_TO_PASS", "empty"), ("FAIL_TO_PASS", "gold"), ("patch", "gold")])
def test_eval_refuses_a_row_without_what_grading_needs(tmp_path, field, predictions):
    broken = {key: value for key, value in ROWS[1].items() if key != field}
    tasks = write_rows(tmp_path / "tasks.jsonl", [ROWS[0], broken])
    result = invoke(*eval_args(tmp_path, tasks, predictions))
    assert result.exit_code == 2
    line = error_line(result)
    assert str(tasks) in line and "line 2" in line and f"'{field}'" in line and ROWS[1]["instance_id"] in line


def test_a_row_without_patch_is_fine_for_model_predictions_but_not_for_oracle(tmp_path):
    tasks = write_rows(tmp_path / "tasks.jsonl", [{k: v for k, v in ROWS[0].items() if k != "patch"}])
    graded = invoke(*eval_args(tmp_path, tasks, "empty"))
    assert graded.exit_code == 0, graded.output
    oracle = invoke("run", "--tasks", str(tasks), "--policy", "oracle", "--out", str(tmp_path / "run"))
    assert oracle.exit_code == 2
    assert "'patch'" in error_line(oracle)


def test_an_oversized_patch_is_refused_as_the_models_failure(tmp_path):
    instance_id = ROWS[0]["instance_id"]
    huge = "diff --git a/big.txt b/big.txt\nnew file mode 100644\n--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,2000 @@\n"
    huge += "".join(f"+{'x' * 60} {i}\n" for i in range(2000))
    predictions = write_rows(tmp_path / "preds.jsonl", [{"instance_id": instance_id, "model_patch": huge}])
    result = invoke(*eval_args(tmp_path, FIXTURE, str(predictions), "--max-patch-bytes", "100000"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "runs" / "bad" / "instances" / instance_id / "report.json").read_text())
    grade = report[instance_id]
    assert grade["failure_class"] == "patch_refused" and not grade["resolved"]
    assert "over the 100,000-byte limit" in grade["failure_reason"] and "--max-patch-bytes" in grade["failure_reason"]
    summary = json.loads((tmp_path / "runs" / "bad" / "summary.json").read_text())
    assert summary["error_instances"] == 0 and summary["unresolved_ids"] == [instance_id]


def test_the_max_patch_bytes_default_matches_the_evaluator():
    from swerve.cli.options import MAX_PATCH_BYTES
    from swerve.harness import evaluate

    assert MAX_PATCH_BYTES == evaluate.MAX_PATCH_BYTES
    assert "--max-patch-bytes" in invoke("eval", "--help").output


HOLDER = textwrap.dedent("""
    import sys, time
    from swerve.fileio import run_folder_lock
    with run_folder_lock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.readline()
""")


def test_a_run_folder_in_use_is_refused_naming_it_and_the_holder(tmp_path):
    run_dir = tmp_path / "runs" / "bad"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = invoke(*eval_args(tmp_path, FIXTURE, "empty"))
        assert result.exit_code == 2
        line = error_line(result)
        assert str(run_dir) in line and f"pid {holder.pid}" in line
        assert not (run_dir / "instances").exists()
        agent = invoke("run", "--tasks", str(FIXTURE), "--policy", "noop", "--out", str(run_dir))
        assert agent.exit_code == 2 and f"pid {holder.pid}" in error_line(agent)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    result = invoke(*eval_args(tmp_path, FIXTURE, "empty"))
    assert result.exit_code == 0, result.output


def test_eval_exits_3_when_instances_hit_infrastructure_errors(tmp_path, monkeypatch):
    import swerve.environments
    import swerve.harness.evaluate
    from swerve.errors import InfraError

    def no_environment(task, backend, limits, run_id):
        raise InfraError("the daemon went away")

    monkeypatch.setattr(swerve.environments, "open_environment", no_environment)
    monkeypatch.setattr(swerve.harness.evaluate.time, "sleep", lambda seconds: None)
    result = invoke(*eval_args(tmp_path, FIXTURE, "gold", "--instance-ids", ROWS[0]["instance_id"]))
    assert result.exit_code == 3, result.output
    assert "the daemon went away" in result.output and "re-run the same command" in result.output
    assert "Traceback" not in result.output
    error = json.loads((tmp_path / "runs" / "bad" / "instances" / ROWS[0]["instance_id"] / "error.json").read_text())
    assert error["attempts"] == 3
