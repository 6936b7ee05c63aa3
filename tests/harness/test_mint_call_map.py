"""The call map that narrows a candidate to the tests that can see it: the probe plugin
run by a real pytest on a small real project (no container), and the selection rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swerve.harness.call_map import PROBE_MODULE, CallMapError, changed_lines, function_keys, parse_call_map
from swerve.harness.mutations import mutate_source

LIBRARY = '''\
import functools


def clamp(x, low, high):
    if x < low:
        return low
    return min(x, high)


def window(seq, size):
    return [seq[i:i + size] for i in range(len(seq) - size + 1)]


def make_scaler(factor):
    def scale(x):
        return x * factor
    return scale


DOUBLE = make_scaler(2)


def decorate(func):
    @functools.wraps(func)
    def wrapper(*args):
        return func(*args) + 0
    return wrapper


@decorate
def total(values):
    return sum(values) + 1


class Box:
    def __init__(self, value):
        self.value = value

    def bigger(self, other):
        return self.value > other.value


def only_in_fixture():
    return 41 + 1
'''

TESTS = '''\
import pytest

from pkg.lib import DOUBLE, Box, clamp, only_in_fixture, total, window


@pytest.fixture
def answer():
    return only_in_fixture()


def test_clamp():
    assert clamp(5, 0, 3) == 3


def test_window():
    assert window([1, 2, 3], 2) == [[1, 2], [2, 3]]


def test_double():
    assert DOUBLE(4) == 8


def test_total():
    assert total([1, 2]) == 4


@pytest.mark.parametrize("a, b", [(2, 1), (1, 2)])
def test_box(a, b):
    assert Box(a).bigger(Box(b)) == (a > b)


def test_answer(answer):
    assert answer == 42
'''


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("project")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "lib.py").write_text(LIBRARY)
    (root / "tests").mkdir()
    (root / "tests" / "test_lib.py").write_text(TESTS)
    probe_dir = root.parent / f"{root.name}-probe"
    probe_dir.mkdir()
    probe = Path(__file__).parents[2] / "swerve" / "harness" / "call_probe.py"
    (probe_dir / f"{PROBE_MODULE}.py").write_text(probe.read_text())
    out = probe_dir / "calls.json"
    env = {**os.environ, "SWERVE_CALL_MAP": str(out), "PYTHONPATH": f"{probe_dir}{os.pathsep}{root}",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PROBE_MODULE,
                             "tests"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, json.loads(out.read_text())


def _candidate(function_name: str, kind: str):
    for candidate in mutate_source(LIBRARY, "pkg/lib.py", kinds=[kind]):
        if candidate.qualname == function_name:
            return candidate
    raise AssertionError(f"no {kind} candidate in {function_name}")


def test_probe_records_each_test_in_run_order(mapped):
    _, data = mapped
    assert data["order"][:2] == ["tests/test_lib.py::test_clamp", "tests/test_lib.py::test_window"]
    assert "tests/test_lib.py::test_box[2-1]" in data["order"] and len(data["order"]) == 7
    assert all(path.startswith(("pkg/", "tests/")) for path, _ in data["functions"])
    assert parse_call_map(json.dumps(data)).library_files() == {"pkg/__init__.py", "pkg/lib.py"}


@pytest.mark.parametrize("function, kind, expected", [
    ("clamp", "flip_comparison", ["tests/test_lib.py::test_clamp"]),
    ("window", "arithmetic_operator", ["tests/test_lib.py::test_window"]),
    ("make_scaler.scale", "arithmetic_operator", ["tests/test_lib.py::test_double"]),
    ("total", "off_by_one", ["tests/test_lib.py::test_total"]),
    ("Box.bigger", "flip_comparison", ["tests/test_lib.py::test_box[2-1]", "tests/test_lib.py::test_box[1-2]"]),
])
def test_candidates_select_only_the_tests_that_start_their_function(mapped, function, kind, expected):
    _, data = mapped
    call_map = parse_call_map(json.dumps(data))
    passing = list(data["order"])
    assert call_map.tests_for(_candidate(function, kind), passing) == expected
    assert call_map.tests_for(_candidate(function, kind), passing[:1]) == [t for t in expected if t in passing[:1]]


def test_functions_run_at_import_or_in_fixtures_need_the_whole_suite(mapped):
    _, data = mapped
    call_map = parse_call_map(json.dumps(data))
    at_import = [c for c in mutate_source(LIBRARY, "pkg/lib.py") if c.qualname == "make_scaler"]
    assert at_import and all(call_map.tests_for(c, data["order"]) is None for c in at_import)
    in_fixture = _candidate("only_in_fixture", "arithmetic_operator")
    assert call_map.tests_for(in_fixture, data["order"]) is None


def test_function_keys_hold_the_enclosing_function_and_nested_code_only():
    scale = _candidate("make_scaler.scale", "arithmetic_operator")
    assert changed_lines(scale) == (16, 16)
    assert function_keys(scale) == {("pkg/lib.py", 15)}
    comprehension = _candidate("window", "arithmetic_operator")
    assert ("pkg/lib.py", 10) in function_keys(comprehension) and ("pkg/lib.py", 11) in function_keys(comprehension)
    decorated = _candidate("total", "off_by_one")
    assert function_keys(decorated) == {("pkg/lib.py", 30), ("pkg/lib.py", 31)}


def test_unreadable_call_map_is_a_clear_error():
    with pytest.raises(CallMapError, match="unreadable"):
        parse_call_map('{"order": []}')


def _write_source(root: Path) -> Path:
    (root / "minilib").mkdir(parents=True)
    (root / "minilib" / "__init__.py").write_text("")
    (root / "minilib" / "lib.py").write_text(LIBRARY.replace("pkg.lib", "minilib.lib"))
    (root / "tests").mkdir()
    (root / "tests" / "test_lib.py").write_text(TESTS.replace("pkg.lib", "minilib.lib"))
    (root / "tests" / "test_more.py").write_text(
        "from minilib.lib import clamp, window\n\n\ndef test_clamp_low():\n    assert clamp(-1, 0, 3) == 0\n\n\n"
        "def test_window_one():\n    assert window([1], 1) == [[1]]\n"
    )
    return root


@pytest.mark.slow
def test_mint_stages_on_the_scratch_backend_decide_alike_with_and_without_selection(tmp_path: Path):
    """The whole mint run (baseline, call map, candidates, rows) with a real pytest in a
    scratch clone: selection decides some candidates without the whole suite, and both
    paths write the same rows."""
    from swerve.harness.candidate_verdicts import RunScope
    from swerve.harness.mint import mint_tasks
    from swerve.harness.tasks import load_tasks

    source = _write_source(tmp_path / "minilib-src")
    rows, reports, logs = {}, {}, []
    for select in (False, True):
        out = tmp_path / f"tasks-{select}.jsonl"
        reports[select] = mint_tasks(str(source), out, max_tasks=50, seed=0, backend="scratch", timeout=120,
                                     include=["minilib/lib.py"], max_candidates=12, validate=False,
                                     select_tests=select, log=logs.append)
        rows[select] = [(t.mint["candidate"], t.FAIL_TO_PASS) for t in load_tasks(out)]
    assert rows[True] == rows[False] and rows[True]
    assert reports[True].rejected == reports[False].rejected
    assert reports[False].runs_by_scope == {RunScope.FULL: reports[False].candidates_tested}
    assert reports[True].runs_by_scope[RunScope.NONE] + reports[True].runs_by_scope[RunScope.SELECTED] > 0
    assert any(line.startswith("call map: ") for line in logs)


def test_a_selected_run_leaves_no_probe_folder_behind(tmp_path: Path, monkeypatch):
    """Local and scratch environments write the probe to the host's /tmp, once per candidate."""
    import swerve.harness.call_map as call_map
    from swerve.environments.scratch import ScratchEnvironment
    from swerve.harness.hidden_tests import TestRun
    from swerve.schema import Task

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "test_x.py").write_text("def test_x():\n    pass\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "b"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    seen: list[str] = []

    def fake_run(env, task, targets, *, timeout, bytecode_cache="", server=None):
        seen.append(task.test_cmd)
        return TestRun(output="", exit_code=0, statuses={})

    monkeypatch.setattr(call_map, "run_pytest_on", fake_run)
    env = ScratchEnvironment(repo, instance_id="probe-leak")
    try:
        call_map.run_selected(env, Task(instance_id="probe-leak", repo="o/r"), ["test_x.py::test_x"], timeout=60)
    finally:
        env.close()
    probe_dir = seen[0].split("PYTHONPATH=", 1)[1].split()[0]
    assert probe_dir.startswith("/tmp/swerve-probe-") and not os.path.exists(probe_dir)


def test_the_probe_leads_pythonpath_and_keeps_the_tasks_own():
    """A task whose command sets PYTHONPATH keeps it, after the probe folder (two
    assignments would leave only the later one: no probe, or no project path)."""
    from swerve.harness.call_map import probe_task
    from swerve.harness.runner import split_pytest_command
    from swerve.schema import Task

    plain = probe_task(Task(instance_id="t", repo="o/r"), "/tmp/p", "SWERVE_SELECT", "/tmp/p/s.json")
    assert plain.test_cmd == f"SWERVE_SELECT=/tmp/p/s.json PYTHONPATH=/tmp/p python -m pytest -p {PROBE_MODULE}"
    own = Task(instance_id="t", repo="o/r", test_cmd="PYTHONPATH=src:lib python -m pytest -x")
    probed = probe_task(own, "/tmp/p", "SWERVE_SELECT", "/tmp/p/s.json").test_cmd
    assignments = split_pytest_command(probed)[0]
    assert [a for a in assignments if a.startswith("PYTHONPATH=")] == ["PYTHONPATH=/tmp/p:src:lib"]
    assert probed.endswith(f"python -m pytest -x -p {PROBE_MODULE}")
