"""Every command, given bad input, exits with the status table's code (swerve.cli.exits)
and one `error:` line or a usage message, never a traceback. The list of commands is read
from the CLI itself, so a new command without a case here fails this test."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from swerve.cli import app
from swerve.cli.exits import BAD_INPUT, INFRASTRUCTURE

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "toolz_tasks.jsonl"
MISSING = "no-such-file.jsonl"
NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}

# command -> (arguments after the command, extra environment, expected status)
BAD_INPUT_CASES: dict[str, tuple[list[str], dict, int]] = {
    "eval": (["--tasks", MISSING, "--predictions", "gold", "--run-id", "x"], {}, BAD_INPUT),
    "run": (["--tasks", MISSING, "--policy", "noop"], {}, BAD_INPUT),
    "teach": (["--tasks", MISSING, "--policy", "oracle"], {}, BAD_INPUT),
    "select": (["{tmp}/no-run", "--tasks", str(FIXTURE)], {}, BAD_INPUT),
    "report": (["{tmp}/no-run"], {}, BAD_INPUT),
    "images build": (["--tasks", MISSING], {}, BAD_INPUT),
    "images list": ([], NO_DAEMON, INFRASTRUCTURE),
    "images prune": ([], NO_DAEMON, INFRASTRUCTURE),
    "env shell": (["some-task", "--tasks", MISSING], {}, BAD_INPUT),
    "env prune": ([], NO_DAEMON, INFRASTRUCTURE),
    "tasks mint": (["--source", "bogus-source", "--out", "{tmp}/minted.jsonl"], {}, BAD_INPUT),
    "tasks list": ([MISSING], {}, BAD_INPUT),
    "tasks validate": ([MISSING], {}, BAD_INPUT),
    "train rft": (["--model", "{tmp}/no-model", "--teacher", "{tmp}/no-run", "--out", "{tmp}/out"], {}, BAD_INPUT),
    "train rl": (["--model", "{tmp}/no-model", "--tasks", MISSING, "--out", "{tmp}/out"], {}, BAD_INPUT),
    "policy try": (["bogus-spec"], {}, BAD_INPUT),
    "policy tiny-model": (["--heads", "3", "--out", "{tmp}/tiny"], {}, BAD_INPUT),
}


def _leaf_commands() -> list[str]:
    root = typer.main.get_command(app)
    ctx = root.context_class(root)

    def walk(command, path):
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])
        else:
            yield " ".join(path)

    return sorted(walk(root, []))


def test_every_command_has_a_bad_input_case():
    assert _leaf_commands() == sorted(BAD_INPUT_CASES)


@pytest.fixture()
def no_cached_docker_client():
    """The process keeps one docker client (swerve.environments.docker.docker_client is
    cached): unless it is dropped, a test session in which an earlier test talked to the
    real daemon sends the NO_DAEMON cases (env prune, images prune) to that daemon, where
    they really prune. Dropped before the command, and after it for the tests that follow."""
    from swerve.environments.docker import docker_client

    docker_client.cache_clear()
    yield
    docker_client.cache_clear()


@pytest.mark.parametrize("command", sorted(BAD_INPUT_CASES))
def test_bad_input_is_one_line_and_the_tables_status(command, tmp_path, no_cached_docker_client):
    arguments, environment, status = BAD_INPUT_CASES[command]
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    result = CliRunner().invoke(app, [*command.split(), *arguments],
                                env={"COLUMNS": "400", "NO_COLOR": "1", **environment})
    assert "Traceback" not in result.output, result.output
    if command == "policy tiny-model":
        assert not (tmp_path / "tiny").exists()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == status, (command, result.output)
    said = [line for line in result.output.splitlines() if line.startswith("error:") or "Error" in line]
    assert said, f"{command}: no error message in {result.output!r}"


def test_an_unwritable_tiny_model_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["policy", "tiny-model", "--out", str(blocker)], env={"COLUMNS": "400"})
    assert result.exit_code == BAD_INPUT and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"error: --out {blocker}"), result.output


def test_eval_names_its_run_folder_with_out_or_run_id(tmp_path, monkeypatch):
    from swerve.cli.eval import _run_folder

    class Quiet:
        def print(self, *args, **kwargs):
            pass

    assert _run_folder(Quiet(), tmp_path / "runs" / "gold", Path("runs"), None) == (tmp_path / "runs", "gold")
    assert _run_folder(Quiet(), None, tmp_path, "gold") == (tmp_path, "gold")
    assert _run_folder(Quiet(), tmp_path / "gold", Path("runs"), "gold") == (tmp_path, "gold")
    (tmp_path / "here" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    for out in (Path("."), Path("sub/..")):  # the folder's own name, not "" or ".."
        assert _run_folder(Quiet(), out, Path("runs"), None) == (tmp_path, "here")
    assert _run_folder(Quiet(), tmp_path / "gold", tmp_path, None) == (tmp_path, "gold"), "--output agreeing"
    for out, output, run_id in ((None, Path("runs"), None), (tmp_path / "gold", Path("runs"), "other"),
                                (tmp_path / "gold", tmp_path / "elsewhere", None)):
        with pytest.raises(typer.Exit) as stopped:
            _run_folder(Quiet(), out, output, run_id)
        assert stopped.value.exit_code == BAD_INPUT
