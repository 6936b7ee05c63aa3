"""`swerve report` from the command line."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

import swerve.cli.report  # noqa: F401  (registers the command)
from swerve.cli import app


def _invoke(*args: str):
    """Invoke `swerve report ...`, also when `report` is the app's only command."""
    group = typer.main.get_command(app)
    argv = ["report", *args] if hasattr(group, "commands") else list(args)
    return CliRunner().invoke(app, argv)


def test_default_prints_rich_tables_with_both_runs(two_runs):
    tasks_file, baseline, better = two_runs
    result = _invoke(str(baseline), str(better), "--tasks", str(tasks_file))
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output and "better" in result.output
    assert "paired bootstrap" in result.output
    assert "By repository" in result.output and "acme/widgets" in result.output


def test_json_output_has_every_table(two_runs):
    tasks_file, baseline, better = two_runs
    result = _invoke(str(baseline), str(better), "--tasks", str(tasks_file), "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"runs", "compare", "repos", "difficulty", "tasks", "problems"} <= set(payload)
    assert len(payload["tasks"]) == 60
    assert payload["compare"][0]["run"] == "better"


def test_csv_defaults_to_the_task_table(two_runs):
    tasks_file, baseline, _ = two_runs
    result = _invoke(str(baseline), "--tasks", str(tasks_file), "--format", "csv")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("run,instance_id,repo,difficulty,resolved")
    assert len(lines) == 31


def test_markdown_one_table(two_runs):
    _, baseline, _ = two_runs
    result = _invoke(str(baseline), "--format", "markdown", "--table", "repos")
    assert result.exit_code == 0
    assert result.stdout.startswith("## repos\n\n| run | repo |")


def test_html_report_and_trajectory_pages(two_runs, tmp_path):
    tasks_file, baseline, better = two_runs
    out = tmp_path / "report" / "index.html"
    result = _invoke(str(baseline), str(better), "--tasks", str(tasks_file), "--html", str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file()
    pages = sorted((tmp_path / "report" / "trajectories").rglob("*.html"))
    assert len(pages) == 60
    assert 'href="trajectories/baseline/' in out.read_text()


def test_same_run_twice_gets_distinct_names(two_runs):
    _, baseline, _ = two_runs
    result = _invoke(str(baseline), str(baseline), "--format", "json", "--table", "compare")
    payload = json.loads(result.stdout)
    assert payload["compare"][0]["run"] == "baseline-2"
    assert payload["compare"][0]["difference"] == 0


def test_missing_run_dir_is_a_one_line_error(tmp_path):
    result = _invoke(str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "not a directory" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_strict_fails_on_problems(two_runs):
    _, baseline, _ = two_runs
    (baseline / "trajectories.jsonl").open("a").write("{torn")
    assert _invoke(str(baseline), "--format", "json").exit_code == 0
    result = _invoke(str(baseline), "--format", "json", "--strict")
    assert result.exit_code == 1
