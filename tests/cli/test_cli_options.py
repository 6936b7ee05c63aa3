"""Helpers shared by the command modules: --instance-ids parsing and the policy factory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from swerve.cli import app
from swerve.cli.options import split_instance_ids
from swerve.cli.run import policy_factory
from swerve.schema import Task


@pytest.mark.parametrize("value", [None, "", [], ["", " , "], " ,, "])
def test_no_instance_ids_means_every_task(value):
    assert split_instance_ids(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", ["a"]),
        ("a,b", ["a", "b"]),
        (" a , b ,,", ["a", "b"]),
        ("a b", ["a", "b"]),
        (["a,b", "c"], ["a", "b", "c"]),
    ],
)
def test_instance_ids_split_on_commas_and_spaces(value, expected):
    assert split_instance_ids(value) == expected


def _task(instance_id: str) -> Task:
    patch = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    return Task(instance_id=instance_id, repo="o/r", problem_statement="fix", patch=patch)


def test_scripted_policies_are_built_per_task():
    factory = policy_factory("oracle", seed=3)
    first, second = factory(_task("a")), factory(_task("b"))
    assert first is not second and type(first).__name__ == "OraclePolicy"
    assert type(policy_factory("noop")(_task("a"))).__name__ == "NoopPolicy"


def test_an_unknown_policy_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="telepathy"):
        policy_factory("telepathy")


def test_run_names_a_missing_instance_id(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(_task("o__r-1").model_dump(mode="json")) + "\n")
    result = CliRunner().invoke(
        app, ["run", "--tasks", str(tasks), "--policy", "noop", "--out", str(tmp_path / "o"),
              "--instance-ids", "o__r-1, nope"],
        env={"COLUMNS": "250", "NO_COLOR": "1"},
    )
    assert result.exit_code == 2 and "'nope'" in result.output and "'o__r-1'" not in result.output
