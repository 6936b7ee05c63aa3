"""Genuine SWE-bench rows resolve into their official environment (swerve.harness.swebench).

The spec table shipped in swerve/harness/data is proved equal to the swebench
release it names; the slice's rows (real repositories, local bare clones) resolve
to their Python, pinned packages read at environment_setup_commit, test command,
directives and parser; rows no spec covers load with one clear line.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from swebench_slice import SLICE, repo_url, slice_rows, write_slice_rows

from swerve.errors import TaskFormatError
from swerve.harness.swebench import apply_spec, directives_for, is_genuine_row, resolve_rows, spec_for, spec_table
from swerve.harness.swebench.requirements import conda_packages, later_pins_win, specifiers
from swerve.harness.tasks import load_tasks
from swerve.schema import Task

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "generate_swebench_specs.py"


def _generator():
    spec = importlib.util.spec_from_file_location("generate_swebench_specs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_shipped_table_equals_the_swebench_release_it_names(tmp_path):
    """pip installs the named release (no deps) into a throwaway dir; its tables must
    equal the shipped file's data, key by key."""
    generator = _generator()
    shipped = spec_table()
    version = shipped["provenance"]["version"]
    assert shipped["provenance"]["package"] == "swebench" and version.startswith("4.")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--target", str(tmp_path), f"swebench=={version}"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import swebench.harness.grading as grading_before

    fresh = generator.build_table(tmp_path)
    assert generator.differences(shipped, fresh) == []
    assert fresh["provenance"]["version"] == version
    # the process's own swebench (5.x) is untouched by reading the 4.x tree
    import swebench.harness.grading as grading_after
    from swebench.types import TestSpec  # noqa: F401  (5.x only)

    assert grading_before is grading_after


def test_generator_check_mode_reports_a_difference(tmp_path):
    generator = _generator()
    altered = json.loads(json.dumps(spec_table()))
    altered["specs"]["pallets/flask"]["2.3"]["python"] = "3.12"
    assert generator.differences(spec_table(), altered) == ["specs"]


def _slice_tasks() -> dict[str, Task]:
    return {t.instance_id: t for t in resolve_rows(Task.model_validate(r) for r in slice_rows())}


def test_slice_rows_resolve_to_their_official_environment():
    tasks = _slice_tasks()
    assert len(tasks) == 8 and not [t.spec_error for t in tasks.values() if t.spec_error]
    expected_python = {"sympy__sympy-24539": "3.9", "sympy__sympy-22706": "3.9", "sympy__sympy-19954": "3.9",
                       "pallets__flask-5014": "3.11", "psf__requests-2674": "3.9", "pytest-dev__pytest-10356": "3.9",
                       "pytest-dev__pytest-7236": "3.9", "pytest-dev__pytest-7982": "3.9"}
    assert {i: t.python for i, t in tasks.items()} == expected_python

    sympy = tasks["sympy__sympy-24539"]
    assert sympy.test_cmd.endswith("bin/test -C --verbose")
    assert sympy.test_directives == ["sympy/polys/tests/test_rings.py"]
    assert sympy.log_parser == "parse_log_sympy"
    assert sympy.env_requirements == ["mpmath==1.3.0", "flake8", "flake8-comprehensions"]
    assert sympy.spec_source == "swebench 4.1.0 specs[sympy/sympy][1.12]"

    flask = tasks["pallets__flask-5014"]
    assert flask.test_cmd == "pytest -rA" and flask.test_directives == ["tests/test_blueprints.py"]
    assert flask.install_cmd == "python -m pip install -e ."
    pins = set(flask.env_requirements)
    # the pins the issue found missing: from requirements/dev.txt at the env commit and pip_packages
    assert {"Werkzeug==2.3.7", "Jinja2==3.1.2", "click==8.1.3", "pytest==7.3.0", "setuptools==70.0.0"} <= pins
    assert "requirements/dev.txt@182ce3dd15df" in flask.spec_source
    assert not any(p.startswith(("-", "#")) for p in flask.env_requirements)

    requests = tasks["psf__requests-2674"]
    assert (requests.python, requests.install_cmd, requests.env_requirements) == ("3.9", "python -m pip install .", ["pytest"])
    pytest_row = tasks["pytest-dev__pytest-7236"]
    assert "pluggy==0.13.1" in pytest_row.env_requirements and pytest_row.test_requirements == []
    assert pytest_row.log_parser == "parse_log_pytest"


def test_load_tasks_applies_specs_and_a_row_without_one_still_loads(tmp_path, caplog):
    rows = slice_rows()
    unknown_version = {**rows[0], "instance_id": "sympy__sympy-0", "version": "0.0"}
    unknown_repo = {**rows[3], "instance_id": "acme__thing-1", "repo": "acme/thing"}
    missing_commit = {**rows[3], "instance_id": "pallets__flask-0", "environment_setup_commit": "0" * 40}
    path = write_slice_rows(tmp_path / "rows.jsonl", [*rows, unknown_version, unknown_repo, missing_commit])
    tasks = {t.instance_id: t for t in load_tasks(path)}
    assert len(tasks) == 11
    assert all(tasks[r["instance_id"]].spec_source and not tasks[r["instance_id"]].spec_error for r in rows)
    assert tasks["sympy__sympy-0"].spec_error.startswith("sympy__sympy-0: no SWE-bench spec for sympy/sympy version '0.0'")
    assert "acme__thing-1: no SWE-bench spec for repository 'acme/thing'" in tasks["acme__thing-1"].spec_error
    assert tasks["pallets__flask-0"].spec_error == (
        f"pallets__flask-0: environment_setup_commit {'0' * 40} is not in {repo_url('pallets/flask')!r}; "
        f"point repo_source at a clone that holds it (git fetch origin {'0' * 40})"
    )
    for bad in ("sympy__sympy-0", "acme__thing-1", "pallets__flask-0"):
        assert "\n" not in tasks[bad].spec_error and tasks[bad].test_cmd == ""
        assert tasks[bad].spec_error in caplog.text
    raw = {t.instance_id: t for t in load_tasks(path, resolve_specs=False)}
    assert raw["sympy__sympy-24539"].test_cmd == "" and raw["sympy__sympy-24539"].python == "3"


def test_spec_errors_name_the_fix():
    with pytest.raises(TaskFormatError, match=r"known: .*1\.12.*fix the row's `version`"):
        spec_for("sympy/sympy", "9.9", instance_id="x")
    with pytest.raises(TaskFormatError, match="image"):
        spec_for("acme/thing", "1.0", instance_id="x")


def test_minted_tasks_and_5x_rows_are_left_alone():
    minted = Task.model_validate(json.loads((ROOT / "examples" / "toolz.jsonl").read_text().splitlines()[0]))
    assert not is_genuine_row(minted) and resolve_rows([minted]) == [minted]
    row = {**slice_rows()[0], "image": "swebench/sweb.eval.x86_64.sympy_1776_sympy-24539:latest",
           "eval_script": "#!/bin/bash\n: '>>>>> Start Test Output'\n", "log_parser": "parse_log_sympy"}
    five = Task.model_validate(row)
    assert resolve_rows([five]) == [five]
    given = Task.model_validate({**slice_rows()[0], "test_cmd": "bin/test"})
    assert resolve_rows([given]) == [given]
    resolved = apply_spec(Task.model_validate(slice_rows()[0]))
    assert not is_genuine_row(resolved)


def test_django_directives_are_dotted_labels():
    patch = (
        "diff --git a/tests/admin_views/tests.py b/tests/admin_views/tests.py\n"
        "diff --git a/tests/i18n/sampleproject/locale/fr/LC_MESSAGES/django.po b/tests/i18n/x.po\n"
        "diff --git a/tests/fixtures/data.json b/tests/fixtures/data.json\n"
        "diff --git a/tests/migrations/test_operations.py b/tests/migrations/test_operations.py\n"
    )
    assert directives_for("django/django", patch) == ["admin_views.tests", "i18n.x.po", "migrations.test_operations"]
    assert directives_for("pallets/flask", patch)[0] == "tests/admin_views/tests.py"
    assert "tests/fixtures/data.json" not in directives_for("pallets/flask", patch)


def test_requirement_lines_become_plain_specifiers():
    text = "# c\n-r other.txt\nfoo==1.0  # via bar\n    # via baz\n--hash=sha256:x\n.\n-e .\nqux ; python_version >= '3.8'\n\n"
    assert specifiers(text) == ["foo==1.0", "qux ; python_version >= '3.8'"]
    assert conda_packages("'numpy=1.19' scipy pytest==7 'pandas<2.0.0'") == ["numpy==1.19.*", "scipy", "pytest==7", "pandas<2.0.0"]
    assert later_pins_win(["Jinja2==3.0", "click", "jinja2==3.1.2", "Click==8.1.3"]) == ["jinja2==3.1.2", "Click==8.1.3"]


def test_slice_is_present():
    """The slice is the data these tests read; its absence is an error, not a skip."""
    assert (SLICE / "rows.jsonl").is_file(), f"{SLICE}: the SWE-bench slice is missing; set SWERVE_SWEBENCH_SLICE"


def test_parquet_rows_resolve_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = slice_rows()
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    tasks = {t.instance_id: t for t in load_tasks(path)}
    assert tasks["pallets__flask-5014"].python == "3.11" and "Werkzeug==2.3.7" in tasks["pallets__flask-5014"].env_requirements
    assert tasks["sympy__sympy-22706"].log_parser == "parse_log_sympy"


def test_official_images_need_no_requirements_from_a_remote_source(monkeypatch):
    """With --images official the row's environment is in its image: a remote source is not
    cloned at load time just to read a requirements file."""
    row = {**slice_rows()[3], "repo_source": "https://example.invalid/pallets/flask.git"}
    monkeypatch.setenv("SWERVE_IMAGES", "official")
    [task] = resolve_rows([Task.model_validate(row)])
    assert task.spec_error == "" and task.test_cmd == "pytest -rA"
    assert "requirements.txt not read: the row runs in its official image" in task.spec_source
    assert "Werkzeug==2.3.7" in task.env_requirements


def test_unreachable_remote_source_is_one_line(monkeypatch):
    row = {**slice_rows()[3], "repo_source": "https://example.invalid/pallets/flask.git"}
    monkeypatch.setenv("SWERVE_IMAGES", "local")
    [task] = resolve_rows([Task.model_validate(row)])
    assert task.spec_error.startswith("pallets__flask-5014: cannot read the requirements:")
    assert "\n" not in task.spec_error and task.test_cmd == ""


def test_a_row_no_spec_covers_is_one_error_and_the_others_are_graded(toolz_tasks, fake_opener, tmp_path):
    from swerve.harness.evaluate import evaluate
    from swerve.harness.tasks import load_predictions

    bad = resolve_rows([Task.model_validate({**slice_rows()[0], "instance_id": "sympy__sympy-0", "version": "0.0"})])[0]
    good = next(iter(toolz_tasks.values()))
    report = evaluate([bad, good], load_predictions("gold", [bad, good]), run_id="bad-row", output_dir=tmp_path,
                      opener=fake_opener)
    assert report.errors == {"sympy__sympy-0": f"bad task: {bad.spec_error}"}
    assert report.grades[good.instance_id].resolved


def test_cli_eval_exits_2_for_rows_no_spec_covers(tmp_path):
    from typer.testing import CliRunner

    from swerve.cli import app

    rows = write_slice_rows(tmp_path / "rows.jsonl", [{**slice_rows()[0], "instance_id": "sympy__sympy-0", "version": "0.0"}])
    result = CliRunner().invoke(app, ["eval", "--tasks", str(rows), "--predictions", "gold", "--run-id", "bad",
                                      "--output", str(tmp_path / "runs"), "--no-progress", "--backend", "local"],
                                env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert "error sympy__sympy-0: bad task: sympy__sympy-0: no SWE-bench spec for sympy/sympy version '0.0'" in result.output
    assert "(bad task rows)" in result.output and "Traceback" not in result.output


def test_remote_source_requirements_come_from_swerves_mirror_fetched_once(tmp_path, monkeypatch):
    """A remote source is read from the clone swerve keeps of it (here a file:// URL treated
    as remote); loading more rows of the same repository fetches nothing again."""
    from swerve.environments import sources
    from swerve.harness.swebench import requirements as reqs
    from swerve.harness.swebench import resolve

    monkeypatch.setenv("SWERVE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWERVE_IMAGES", "local")
    monkeypatch.setattr(reqs, "local_git_dir", lambda source: None)
    resolve._file_requirements.cache_clear()
    calls = []
    real_git = sources.git

    def counting_git(args, *a, **k):
        calls.append(args[:2])
        return real_git(args, *a, **k)

    monkeypatch.setattr(sources, "git", counting_git)
    row = slice_rows()[3]
    first = resolve_rows([Task.model_validate(row)])[0]
    second = resolve_rows([Task.model_validate({**row, "instance_id": "pallets__flask-5014-again"})])[0]
    assert "Werkzeug==2.3.7" in first.env_requirements and first.env_requirements == second.env_requirements
    assert ["clone", "-q"] in calls and ["remote", "update"] not in calls
    resolve._file_requirements.cache_clear()

