"""`swerve policy try` and `swerve policy tiny-model`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import swerve.cli.policy  # noqa: F401  (registers the command group)
from swerve.cli import app


def test_try_with_a_bad_spec_names_the_valid_forms():
    result = CliRunner().invoke(app, ["policy", "try", "gpt"])
    assert result.exit_code == 2
    assert "openai:MODEL[@http://HOST:PORT/v1]" in result.output.replace("\n", "")


@pytest.mark.rl
def test_tiny_model_then_try_it(tmp_path):
    runner = CliRunner()
    built = runner.invoke(app, ["policy", "tiny-model", "--out", str(tmp_path / "tiny")])
    assert built.exit_code == 0, built.output
    folder = built.stdout.strip().splitlines()[-1]
    assert folder == str(tmp_path / "tiny")
    tried = runner.invoke(app, ["policy", "try", f"hf:{folder}?max_new_tokens=4&seed=0", "--no-tools"])
    assert tried.exit_code == 0, tried.output
    shown = json.loads(tried.stdout[tried.stdout.index("{"):])
    assert shown["completion"]["completion_token_ids"] == "<4 values>" or shown["completion"]["finish_reason"] == "stop"
    assert shown["policy"]["max_new_tokens"] == 4
